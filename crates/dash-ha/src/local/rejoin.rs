//! Rejoining a fenced or stale node as a streaming replica of the current
//! primary: `pg_rewind`, or a fresh clone when rewind cannot.

use dash_pg::{kill_data_dir_processes, server_command, PgError, PgNode, StopMode};

use super::{remove_file, ClusterError, LocalCluster};
use crate::topology::Role;

impl LocalCluster {
    /// Brings a fenced (or stale) node back as a streaming replica of the
    /// current primary: `pg_rewind`, or a fresh clone when rewind cannot.
    pub fn rejoin(
        &mut self,
        name: &str,
        progress: &dyn Fn(&str),
    ) -> Result<&'static str, ClusterError> {
        let n = self.info(name)?;
        let primary = self
            .topo
            .primary()
            .cloned()
            .ok_or_else(|| ClusterError::Invalid("no primary to follow".into()))?;
        kill_data_dir_processes(&n.data_dir);
        // pg_rewind finishes crash recovery in single-user mode, which refuses
        // to run with standby.signal. Nothing starts a fenced node meanwhile:
        // it is recorded as fenced, and the signal is back before it starts.
        remove_file(&n.data_dir.join("standby.signal"))?;
        let mut cmd = server_command(&self.bins.path("pg_rewind"));
        cmd.arg("--target-pgdata").arg(&n.data_dir);
        cmd.arg(format!(
            "--source-server={}",
            self.conninfo(&primary, &n.name)
        ));
        cmd.env("PGPASSFILE", self.passfile());
        let source = self.pg(&primary.name)?;
        // A just-promoted primary records its new timeline only at its next
        // checkpoint; before that pg_rewind sees one timeline and rewinds nothing.
        source.psql("postgres", "CHECKPOINT")?;
        let rewound = dash_pg::run_command(cmd)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                self.topo.node_mut(name).expect("checked").role = Role::Replica;
                self.write_role_conf(name).map_err(|e| e.to_string())?;
                let pg = self.pg(name).map_err(|e| e.to_string())?;
                pg.start().map_err(|e| e.to_string())?;
                if self.wait_streaming(name, std::time::Duration::from_secs(10)) {
                    Ok(())
                } else {
                    let _ = pg.stop(StopMode::Immediate);
                    Err("it did not stream from the primary after the rewind".into())
                }
            });
        let how = match rewound {
            Ok(()) => return Ok("rewound"),
            Err(e) => {
                progress(&format!(
                    "pg_rewind of {name} did not work ({e}); cloning it afresh"
                ));
                kill_data_dir_processes(&n.data_dir);
                std::fs::remove_dir_all(&n.data_dir)
                    .map_err(|e| PgError::io(format!("remove {}", n.data_dir.display()), e))?;
                PgNode::clone_replica(&self.bins, &source, self.config(&n), None)?;
                "recloned"
            }
        };
        self.topo.node_mut(name).expect("checked").role = Role::Replica;
        self.write_role_conf(name)?;
        self.pg(name)?.start()?;
        Ok(how)
    }
    /// Whether `name` shows up as streaming on the primary within `limit`.
    pub fn wait_streaming(&self, name: &str, limit: std::time::Duration) -> bool {
        let Some(primary) = self.topo.primary().and_then(|p| self.pg(&p.name).ok()) else {
            return false;
        };
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{}' AND state = 'streaming'",
            name.replace('\'', "")
        );
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if primary
                .psql("postgres", &sql)
                .map(|o| o.trim() == "1")
                .unwrap_or(false)
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
}
