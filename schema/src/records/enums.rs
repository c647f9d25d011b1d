//! The small enumerations of the domain. Each is stored by its lower-case name in column
//! values (indexes, SQL) and by its postcard variant index in records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is not one of an enumeration's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariant {
    /// What was given.
    pub input: String,
    /// What is allowed.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not one of {}",
            self.input,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownVariant {}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The lower-case name.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<$name, UnknownVariant> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { input: s.to_owned(), expected: $name::NAMES }),
                }
            }
        }
    };
}

named_enum!(
    /// Buy or sell.
    Side {
        /// Buys the instrument, pays cash.
        Buy = "buy",
        /// Sells the instrument, receives cash.
        Sell = "sell",
    }
);

impl Side {
    /// +1 for a buy, -1 for a sell: the sign a fill's quantity has in a position.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

named_enum!(
    /// How an order is priced.
    OrderKind {
        /// Has a limit price on the instrument's tick.
        Limit = "limit",
        /// Takes whatever the book offers; has no price.
        Market = "market",
    }
);

named_enum!(
    /// How long an order stays working.
    TimeInForce {
        /// Good till cancelled.
        Gtc = "gtc",
        /// Immediate or cancel: what does not fill at once is cancelled.
        Ioc = "ioc",
        /// Fill or kill: fills completely at once or not at all.
        Fok = "fok",
        /// Good for the trading day.
        Day = "day",
    }
);

named_enum!(
    /// An order's life: `new -> partially_filled -> filled`, or `-> cancelled / rejected`.
    OrderStatus {
        /// Accepted, nothing filled.
        New = "new",
        /// Some but not all of the quantity filled.
        PartiallyFilled = "partially_filled",
        /// Completely filled (terminal).
        Filled = "filled",
        /// Cancelled with quantity left (terminal).
        Cancelled = "cancelled",
        /// Refused before anything filled (terminal).
        Rejected = "rejected",
    }
);

impl OrderStatus {
    /// A terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }

    /// Still working in the book.
    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }
}

named_enum!(
    /// Whether an account may trade.
    AccountStatus {
        /// May place orders.
        Active = "active",
        /// Temporarily barred from new orders.
        Suspended = "suspended",
        /// Closed for good.
        Closed = "closed",
    }
);
