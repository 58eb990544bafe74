//! The demo runtime's journal (`--demo-journal`): what each run of an agent
//! did, by the runtime's own clock, outside the database. Two runs of one
//! agent overlap when a later attempt starts before an earlier one's last
//! line; its resolution is one step of the demo (the run may have lived up
//! to a step past its last line, but never less).

use std::collections::BTreeMap;

use serde::Serialize;

/// One journal line: `start AGENT ATTEMPT NS`, `step AGENT ATTEMPT I NS`
/// or `end AGENT ATTEMPT NS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: String,
    pub agent: String,
    pub attempt: i32,
    /// Nanoseconds since the Unix epoch.
    pub ns: u128,
}

/// Parses the journal; returns its lines and how many were unreadable.
pub fn parse(text: &str) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut bad = 0;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let fields = match f.first() {
            Some(&"start") | Some(&"end") => 4,
            Some(&"step") => 5,
            _ => 0,
        };
        let parsed = (f.len() == fields)
            .then(|| Some((f[2].parse().ok()?, f[fields - 1].parse().ok()?)))
            .flatten();
        match parsed {
            Some((attempt, ns)) => lines.push(Line {
                kind: f[0].to_string(),
                agent: f[1].to_string(),
                attempt,
                ns,
            }),
            None => bad += 1,
        }
    }
    (lines, bad)
}

/// One overlap: `later` of `agent` started while `earlier` still ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overlap {
    pub agent: String,
    pub earlier: i32,
    pub later: i32,
    /// How long the two ran together, at least (ms).
    pub overlap_ms: u64,
}

/// What the journal shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JournalFigures {
    /// Agents with at least one run.
    pub agents: usize,
    /// Runs (agent, attempt) that started.
    pub runs: usize,
    /// Runs that reached `end` (a normal exit).
    pub ended: usize,
    /// Attempts of one agent started more than once (a double claim).
    pub double_starts: usize,
    /// Agents whose runs reached `end` more than once: a run finished but
    /// its worker died before the completion was recorded, so the agent ran
    /// again (at least once in work, exactly once in completions).
    pub ended_more_than_once: usize,
    pub overlaps: Vec<Overlap>,
}

#[derive(Default)]
struct Run {
    starts: usize,
    first: Option<u128>,
    last: u128,
    ended: bool,
}

/// Orders each agent's runs by their start and finds every run that began
/// before an earlier-started run's last line.
pub fn overlaps(lines: &[Line]) -> JournalFigures {
    let mut by_agent: BTreeMap<&str, BTreeMap<i32, Run>> = BTreeMap::new();
    for l in lines {
        let run = by_agent
            .entry(&l.agent)
            .or_default()
            .entry(l.attempt)
            .or_default();
        if l.kind == "start" {
            run.starts += 1;
        }
        run.ended |= l.kind == "end";
        run.first = Some(run.first.map_or(l.ns, |f| f.min(l.ns)));
        run.last = run.last.max(l.ns);
    }
    let mut fig = JournalFigures {
        agents: by_agent.len(),
        ..JournalFigures::default()
    };
    for (agent, runs) in &by_agent {
        let mut ordered: Vec<(i32, &Run)> = runs.iter().map(|(a, r)| (*a, r)).collect();
        ordered.sort_by_key(|(a, r)| (r.first, *a));
        fig.runs += ordered.iter().filter(|(_, r)| r.starts > 0).count();
        let ended = ordered.iter().filter(|(_, r)| r.ended).count();
        fig.ended += ended;
        fig.ended_more_than_once += usize::from(ended > 1);
        fig.double_starts += ordered.iter().filter(|(_, r)| r.starts > 1).count();
        // The latest last line of any run that started earlier.
        let mut before: Option<(i32, u128)> = None;
        for (attempt, run) in ordered {
            let start = run.first.unwrap_or(0);
            if let Some((earlier, last)) = before {
                if start < last {
                    fig.overlaps.push(Overlap {
                        agent: agent.to_string(),
                        earlier,
                        later: attempt,
                        overlap_ms: ((last - start) / 1_000_000) as u64,
                    });
                }
            }
            if before.is_none_or(|(_, last)| run.last > last) {
                before = Some((attempt, run.last));
            }
        }
    }
    fig
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u128 = 1_000_000;

    fn journal(lines: &[(&str, &str, i32, u128)]) -> String {
        lines
            .iter()
            .map(|(k, a, n, t)| match *k {
                "step" => format!("step {a} {n} 1 {}\n", t * MS),
                _ => format!("{k} {a} {n} {}\n", t * MS),
            })
            .collect()
    }

    #[test]
    fn parses_every_kind_and_counts_bad_lines() {
        let (lines, bad) =
            parse("start a 1 10\nstep a 1 3 20\nend a 1 30\nnonsense\nstep a x 1 2\n\n");
        assert_eq!(bad, 2);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].kind, "step");
        assert_eq!((lines[1].attempt, lines[1].ns), (1, 20));
    }

    #[test]
    fn a_killed_run_then_a_later_attempt_is_no_overlap() {
        let text = journal(&[
            ("start", "a", 1, 0),
            ("step", "a", 1, 100),
            ("step", "a", 1, 200),
            ("start", "b", 1, 50),
            ("start", "a", 2, 11_000),
            ("step", "a", 2, 11_100),
            ("end", "a", 2, 11_200),
            ("end", "b", 1, 300),
        ]);
        let f = overlaps(&parse(&text).0);
        assert_eq!((f.agents, f.runs, f.ended), (2, 3, 2));
        assert!(f.overlaps.is_empty(), "{f:?}");
        assert_eq!(f.double_starts, 0);
    }

    #[test]
    fn a_second_attempt_starting_before_the_first_stopped_is_an_overlap() {
        let text = journal(&[
            ("start", "a", 1, 0),
            ("step", "a", 1, 100),
            ("start", "a", 2, 150),
            ("step", "a", 1, 200),
            ("end", "a", 2, 400),
        ]);
        let f = overlaps(&parse(&text).0);
        assert_eq!(
            f.overlaps,
            vec![Overlap {
                agent: "a".into(),
                earlier: 1,
                later: 2,
                overlap_ms: 50
            }]
        );
    }

    #[test]
    fn a_run_outliving_a_later_one_still_overlaps_the_third() {
        // Attempt 1 runs long; attempt 2 starts and ends inside it (one
        // overlap), attempt 3 starts after 2 ended but before 1 did.
        let text = journal(&[
            ("start", "a", 1, 0),
            ("start", "a", 2, 100),
            ("end", "a", 2, 200),
            ("start", "a", 3, 300),
            ("end", "a", 1, 500),
            ("end", "a", 3, 600),
        ]);
        let f = overlaps(&parse(&text).0);
        let pairs: Vec<(i32, i32)> = f.overlaps.iter().map(|o| (o.earlier, o.later)).collect();
        assert_eq!(pairs, vec![(1, 2), (1, 3)]);
    }

    #[test]
    fn the_same_attempt_started_twice_is_a_double_start() {
        let text = journal(&[
            ("start", "a", 1, 0),
            ("start", "a", 1, 10),
            ("end", "a", 1, 20),
        ]);
        assert_eq!(overlaps(&parse(&text).0).double_starts, 1);
    }

    #[test]
    fn a_run_that_ended_before_its_worker_died_counts_as_ended_twice() {
        let text = journal(&[
            ("start", "a", 1, 0),
            ("end", "a", 1, 100),
            ("start", "a", 2, 11_000),
            ("end", "a", 2, 11_100),
        ]);
        let f = overlaps(&parse(&text).0);
        assert_eq!((f.ended, f.ended_more_than_once), (2, 1));
        assert!(f.overlaps.is_empty());
    }
}
