use tradestore::{ReadOps, Store};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = Store::open_dir(&args[1]).unwrap();
    let n: usize = args[2].parse().unwrap();
    let t = std::time::Instant::now();
    let mut rows = 0;
    for i in 0..n {
        let tx = store.read().unwrap();
        rows += tx.recent_trades(1 + (i as u64 % 100), 100).unwrap().len();
    }
    let e = t.elapsed();
    println!(
        "{} queries, {} rows, {:.1} us/query",
        n,
        rows,
        e.as_secs_f64() * 1e6 / n as f64
    );
    let t = std::time::Instant::now();
    let sql = store
        .query("SELECT count(*) FROM trades WHERE account = 7")
        .unwrap();
    println!("count by account: {:?} in {:?}", sql.rows, t.elapsed());
}
