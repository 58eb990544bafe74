//! Dash's measurements: the load driver and the pgbench comparison behind
//! `dashctl bench`, and the fault injection behind `dashctl chaos` (on one
//! machine, and with `--hosts` on network-namespace hosts).

pub mod chaos;
pub mod compare;
pub mod hosts;
pub mod load;
pub mod pitr_drill;
pub mod worker;
pub mod worker_chaos;
