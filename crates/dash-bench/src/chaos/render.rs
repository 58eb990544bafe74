//! The text form of a chaos report.

use super::ChaosReport;

impl ChaosReport {
    /// The summary as `dashctl chaos` prints it.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let r = self;
        let mut out = String::new();
        let mode = if r.synchronous {
            "synchronous"
        } else {
            "asynchronous"
        };
        let _ = writeln!(
            out,
            "scenario {:?}, {mode} replication, {} round(s)",
            r.scenario,
            r.rounds.len()
        );
        if let Some(g) = &r.write_gap_ms {
            let _ = writeln!(
                out,
                "  write gap ms      min {:.0}  median {:.0}  p90 {:.0}  max {:.0}",
                g.min, g.median, g.p90, g.max
            );
        }
        if let Some(h) = &r.ha_restored_ms {
            let _ = writeln!(
                out,
                "  HA restored ms    min {:.0}  median {:.0}  p90 {:.0}  max {:.0}",
                h.min, h.median, h.p90, h.max
            );
        }
        let _ = writeln!(out, "  acknowledged      {}", r.acked_writes);
        let _ = writeln!(out, "  lost              {}", r.lost);
        let _ = writeln!(out, "  duplicates        {}", r.duplicates);
        let _ = writeln!(out, "  fenced writes     {}", r.fenced_writes);
        out
    }
}
