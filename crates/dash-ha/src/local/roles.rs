//! The per-role configuration Dash owns (`postgresql.auto.conf` and
//! `standby.signal`, rewritten on every role change and after every rewind
//! so nothing copied from another node survives), and fencing.

use dash_pg::kill_data_dir_processes;

use super::{remove_file, write_file, ClusterError, LocalCluster};
use crate::topology::Role;

impl LocalCluster {
    /// Replicas that may acknowledge a synchronous commit for the current primary.
    pub fn sync_names(&self) -> Vec<String> {
        self.topo.replicas().map(|n| n.name.clone()).collect()
    }

    /// Rewrites the node's Dash-owned configuration for its recorded role.
    /// Primary: `synchronous_standby_names` over the given standbys (or all
    /// replicas). Replica and fenced: follow the primary, and `standby.signal`
    /// so the node can only ever start read-only.
    pub fn write_role_conf(&self, name: &str) -> Result<(), ClusterError> {
        let names = if self.topo.synchronous {
            self.sync_names()
        } else {
            Vec::new()
        };
        self.write_role_conf_with(name, &names)
    }

    pub fn write_role_conf_with(&self, name: &str, sync: &[String]) -> Result<(), ClusterError> {
        let n = self.info(name)?;
        let mut lines =
            vec!["# Managed by Dash: rewritten on every role change and rejoin.".to_string()];
        let signal = n.data_dir.join("standby.signal");
        match n.role {
            Role::Primary => {
                let ssn = if sync.is_empty() {
                    String::new()
                } else {
                    format!("ANY 1 ({})", sync.join(", "))
                };
                lines.push(format!("synchronous_standby_names = '{ssn}'"));
                remove_file(&signal)?;
            }
            Role::Replica | Role::Fenced => {
                lines.push("synchronous_standby_names = ''".into());
                if let Some(p) = self.topo.primary() {
                    lines.push(format!(
                        "primary_conninfo = '{}'",
                        self.conninfo(p, &n.name).replace('\'', "''")
                    ));
                }
                lines.push("recovery_target_timeline = 'latest'".into());
                write_file(&signal, "")?;
            }
        }
        write_file(
            &n.data_dir.join("postgresql.auto.conf"),
            &(lines.join("\n") + "\n"),
        )?;
        Ok(())
    }

    /// Fences `name`: kills every process running in its data directory (works
    /// on a frozen server too), makes it start only as a standby, and records
    /// the fence durably before anything is promoted.
    pub fn fence(&mut self, name: &str) -> Result<(), ClusterError> {
        let n = self.info(name)?;
        kill_data_dir_processes(&n.data_dir);
        self.topo.node_mut(name).expect("checked").role = Role::Fenced;
        self.write_role_conf(name)?;
        self.topo.save(&self.home)?;
        Ok(())
    }
}
