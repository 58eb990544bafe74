use super::*;

fn m(max: f64, in_use: f64, waiting: f64, timeouts: f64) -> ApiMetrics {
    ApiMetrics {
        pool_max_size: Some(max),
        pool_in_use: Some(in_use),
        pool_waiting: Some(waiting),
        acquire_timeouts: Some(timeouts),
        ..ApiMetrics::default()
    }
}

fn slots(max_connections: usize, other: usize, addresses: usize) -> Option<ServerSlots> {
    Some(ServerSlots {
        max_connections,
        reserved: 3,
        other_sessions: other,
        api_addresses: addresses,
    })
}

#[test]
fn waiting_callers_grow_the_pool_within_what_the_server_gives() {
    let i = PoolInputs {
        samples: vec![m(20.0, 20.0, 6.0, 10.0), m(20.0, 18.0, 2.0, 12.0)],
        observed: Duration::from_secs(1),
        server: slots(100, 7, 2),
        api_replicas: None,
    };
    let a = advise(&i).unwrap();
    // demand 20 + 6 = 26, +ceil(26/4) = 33; budget 100 - 3 - 7 = 90, / 2 = 45.
    assert_eq!((a.current, a.recommended), (20, 33));
    let text = a.render();
    assert!(
        text.contains("demand = in use 20 + waiting 6 = 26"),
        "{text}"
    );
    assert!(text.contains("floor(90 / 2) = 45"), "{text}");
    assert!(
        text.contains("2 API process(es), from 2 distinct"),
        "{text}"
    );
    assert!(text.contains("dashctl db pool --size 33"), "{text}");
}

#[test]
fn the_server_caps_the_advice_and_says_what_max_connections_would_need() {
    let i = PoolInputs {
        samples: vec![m(20.0, 20.0, 10.0, 0.0)],
        observed: Duration::from_secs(1),
        server: slots(100, 27, 1),
        api_replicas: Some(4),
    };
    let a = advise(&i).unwrap();
    // wanted 30 + 8 = 38 > floor(70 / 4) = 17: capped; 38 x 4 + 3 + 27 = 182.
    assert_eq!(a.recommended, 17);
    let text = a.render();
    assert!(text.contains("at least 38 x 4 + 3 + 27 = 182"), "{text}");
    assert!(
        text.contains("4 x 20 = 80 connections could be opened, more than the 70"),
        "{text}"
    );
    assert!(!text.contains("assumed:"), "every figure observed: {text}");
}

#[test]
fn no_pressure_keeps_the_size_and_missing_figures_are_named() {
    let quiet = PoolInputs {
        samples: vec![m(20.0, 3.0, 0.0, 0.0), m(20.0, 5.0, 0.0, 0.0)],
        observed: Duration::from_secs(1),
        server: slots(100, 2, 1),
        api_replicas: None,
    };
    let a = advise(&quiet).unwrap();
    assert_eq!((a.recommended, a.command.clone()), (20, None));
    assert!(a.render().contains("20 is enough"), "{}", a.render());
    let blind = PoolInputs {
        samples: vec![ApiMetrics {
            pool_in_use: Some(2.0),
            pool_max_size: Some(10.0),
            ..ApiMetrics::default()
        }],
        server: None,
        ..quiet.clone()
    };
    let a = advise(&blind).unwrap();
    let text = a.render();
    assert!(text.contains("assumed: no one waiting"), "{text}");
    assert!(text.contains("assumed: no limit from the server"), "{text}");
    assert!(text.contains("assumed: 1 API process(es)"), "{text}");
    let none = PoolInputs {
        samples: vec![],
        ..quiet
    };
    assert!(advise(&none).is_none());
}
