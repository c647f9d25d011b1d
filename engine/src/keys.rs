//! Order-preserving key encoding: a list of [`Value`]s becomes bytes whose lexicographic
//! order (redb compares `&[u8]` keys with memcmp) equals the order of the value lists.
//!
//! Each value is a one-byte tag then its body:
//!
//! | tag | value | body |
//! |---|---|---|
//! | `0x00` | Null | none (sorts first) |
//! | `0x01` | U64 | 8 bytes big-endian |
//! | `0x02` | I64 | 8 bytes big-endian with the sign bit flipped |
//! | `0x03` | Text | bytes with `0x00` escaped as `0x00 0xFF`, ended by `0x00 0x01` |
//!
//! Every encoded value is self-delimiting, so an encoded prefix of a list is a byte prefix of
//! the whole: index scans by leading columns are byte-prefix scans.

use tradestore_schema::Value;

use crate::error::{Error, Result};

const NULL: u8 = 0x00;
const U64: u8 = 0x01;
const I64: u8 = 0x02;
const TEXT: u8 = 0x03;

/// Appends one encoded value to `out`.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::U64(x) => {
            out.push(U64);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::I64(x) => {
            out.push(I64);
            out.extend_from_slice(&((*x as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Text(s) => {
            out.push(TEXT);
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0x00, 0x01]);
        }
    }
}

/// Encodes a list of values.
pub fn encode(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for v in values {
        encode_value(&mut out, v);
    }
    out
}

/// The key of a row whose primary key is a single id (the common case), without allocating
/// a `Value`.
pub fn id_key(id: u64) -> [u8; 9] {
    let mut k = [U64; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The id of a key made by [`id_key`], if `key` is one.
pub fn id_of(key: &[u8]) -> Option<u64> {
    match key {
        [U64, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// A key as people read it: its values joined by `/` (`7`, `12/USD`), or its bytes in hex
/// when it does not decode.
pub fn show(key: &[u8]) -> String {
    decode(key)
        .map(|v| crate::txn::show_values(&v))
        .unwrap_or_else(|_| format!("{key:02x?}"))
}

/// Decodes a whole key back into values. Any malformed byte is a corruption error.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<Value>> {
    let bad = |what: &str| Error::corruption(format!("malformed key: {what}"));
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        match tag {
            NULL => out.push(Value::Null),
            U64 | I64 => {
                let (body, rest) = bytes
                    .split_first_chunk::<8>()
                    .ok_or_else(|| bad("short integer"))?;
                bytes = rest;
                let raw = u64::from_be_bytes(*body);
                out.push(if tag == U64 {
                    Value::U64(raw)
                } else {
                    Value::I64((raw ^ (1 << 63)) as i64)
                });
            }
            TEXT => {
                let mut s = Vec::new();
                loop {
                    let (&b, rest) = bytes
                        .split_first()
                        .ok_or_else(|| bad("unterminated text"))?;
                    bytes = rest;
                    if b != 0 {
                        s.push(b);
                        continue;
                    }
                    let (&next, rest) = bytes
                        .split_first()
                        .ok_or_else(|| bad("unterminated text"))?;
                    bytes = rest;
                    match next {
                        0xFF => s.push(0),
                        0x01 => break,
                        _ => return Err(bad("bad escape in text")),
                    }
                }
                out.push(Value::Text(
                    String::from_utf8(s).map_err(|_| bad("text is not UTF-8"))?,
                ));
            }
            _ => return Err(bad("unknown tag")),
        }
    }
    Ok(out)
}

/// The byte length of the first `n` encoded values of `bytes`.
pub fn len_of_values(bytes: &[u8], n: usize) -> Result<usize> {
    let bad = |what: &str| Error::corruption(format!("malformed key: {what}"));
    let mut pos = 0;
    for _ in 0..n {
        let tag = *bytes.get(pos).ok_or_else(|| bad("too few values"))?;
        pos += 1;
        match tag {
            NULL => {}
            U64 | I64 => pos += 8,
            TEXT => loop {
                match bytes.get(pos..pos + 2) {
                    Some([0, 0x01]) => {
                        pos += 2;
                        break;
                    }
                    Some([0, _]) => pos += 2,
                    Some(_) => pos += 1,
                    None => return Err(bad("unterminated text")),
                }
            },
            _ => return Err(bad("unknown tag")),
        }
    }
    if pos > bytes.len() {
        return Err(bad("short integer"));
    }
    Ok(pos)
}

/// The smallest byte string greater than every string starting with `prefix`, or `None`
/// when no such string exists (the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals() -> Vec<Vec<Value>> {
        vec![
            vec![Value::Null],
            vec![Value::U64(0)],
            vec![Value::U64(1), Value::Text("a".into())],
            vec![Value::U64(1), Value::Text("a\0b".into())],
            vec![Value::U64(1), Value::Text("ab".into())],
            vec![Value::U64(u64::MAX)],
            vec![Value::I64(i64::MIN)],
            vec![Value::I64(-1)],
            vec![Value::I64(0)],
            vec![Value::I64(i64::MAX)],
            vec![Value::Text(String::new())],
            vec![Value::Text("\0".into())],
            vec![Value::Text("z".into()), Value::U64(3)],
        ]
    }

    #[test]
    fn round_trip() {
        for v in vals() {
            assert_eq!(decode(&encode(&v)).unwrap(), v);
        }
    }

    #[test]
    fn byte_order_is_value_order() {
        let vs = vals();
        for a in &vs {
            for b in &vs {
                assert_eq!(encode(a).cmp(&encode(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn id_key_matches_encode() {
        assert_eq!(id_key(42).to_vec(), encode(&[Value::U64(42)]));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(decode(&[U64, 1, 2]).is_err());
        assert!(decode(&[TEXT, b'a']).is_err());
        assert!(decode(&[TEXT, 0, 7]).is_err());
        assert!(decode(&[9]).is_err());
    }

    #[test]
    fn len_of_values_skips_values() {
        let v = vec![Value::Text("a\0b".into()), Value::U64(3), Value::I64(-2)];
        let bytes = encode(&v);
        assert_eq!(len_of_values(&bytes, 0).unwrap(), 0);
        assert_eq!(len_of_values(&bytes, 1).unwrap(), encode(&v[..1]).len());
        assert_eq!(len_of_values(&bytes, 3).unwrap(), bytes.len());
        assert!(len_of_values(&bytes, 4).is_err());
        assert!(len_of_values(&bytes[..bytes.len() - 1], 3).is_err());
    }

    #[test]
    fn prefix_end_bounds_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }
}
