//! Dash's measurements: the load driver and the pgbench comparison behind
//! `dashctl bench`, and the fault injection behind `dashctl chaos`.

pub mod chaos;
pub mod compare;
pub mod load;
