//! Halts for a restore: one test per rule of `decide/halt.rs`, and the
//! ordinary rules that bring the restored cluster up once it is lifted.

use dash_dcs::Halt;

use super::*;

impl View {
    /// A halt filed at revision 13, naming `restored` once it is in place.
    fn halt(mut self, restored: Option<&str>) -> Self {
        self.0.halt = Some(Versioned {
            value: Halt {
                by: "dashctl db restore".into(),
                reason: "restore to 2026-11-30T12:00:00Z".into(),
                restored: restored.map(Into::into),
            },
            mod_revision: 13,
        });
        self
    }
}

#[test]
fn halt_stops_every_running_server_cleanly_and_the_holder_gives_up_the_key() {
    let v = a_leads().halt(None);
    assert_is(on("a", &v, primary()), "HaltStop");
    assert_is(on("b", &v, standby("a")), "HaltStop");
    // Stopped, but still holding the key: it gives it up.
    assert_is(on("a", &v, stopped()), "HaltStop");
    // Stopped and not holding it: nothing to do, nothing starts.
    assert_is(on("b", &v, stopped()), "Wait");
    assert_is(on("c", &v, empty()), "Wait");
}

#[test]
fn halted_primary_without_a_valid_lease_is_fenced_not_stopped_slowly() {
    let v = a_leads().halt(None);
    assert_is(run("a", Some(&v), Lease::RanOut, primary()), "Fence");
    // A standby is not writable: a clean stop is fine without the lease.
    assert_is(run("b", Some(&v), Lease::RanOut, standby("a")), "HaltStop");
}

#[test]
fn once_restored_every_other_member_sets_its_data_aside() {
    let v = free("a", &["b"]).halt(Some("b"));
    assert_is(on("a", &v, stopped()), "SetAside");
    assert_is(on("c", &v, stopped()), "SetAside");
    // The restored member keeps its data; a member without data waits.
    assert_is(on("b", &v, stopped()), "Wait");
    assert_is(on("a", &v, empty()), "Wait");
}

#[test]
fn after_the_halt_the_restored_member_leads_and_the_others_clone_from_it() {
    // What `mark_restored` leaves behind: the sync record names `b` alone.
    let v = free("b", &[]);
    // Its data is a promoted cluster it does not (yet) lead: it looks like a
    // former primary that needs a rewind, yet as the last leader it acquires.
    let restored = with(stopped(), |l| l.needs_rewind = true);
    assert_eq!(on("b", &v, restored), Action::Acquire);
    assert_is(on("a", &v, empty()), "Wait");
    let v = held("b", LEASE, &[]).member(member("b", "primary", 10, false));
    assert_is(on("a", &v, empty()), "Clone");
}
