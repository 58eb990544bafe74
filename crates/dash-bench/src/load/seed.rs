//! Seeding before the clock starts, through the API and unmeasured: the
//! agents the get mix reads, and any batch of POSTs (the list mix's swarms
//! and agents), `concurrency` at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::driver::Ctx;
use super::report::{Op, Outcome};
use super::LoadError;

/// Creates the agents the get mix reads, `concurrency` at a time, unmeasured.
pub(super) async fn agents(ctx: &Arc<Ctx>) -> Result<Vec<Uuid>, LoadError> {
    let ids: Vec<Uuid> = (0..ctx.config.seed_agents)
        .map(|_| Uuid::new_v4())
        .collect();
    let bodies = ids.iter().map(|id| {
        let body = format!(r#"{{"id":"{id}","task":{}}}"#, ctx.task_json);
        (ctx.create_url.clone(), body)
    });
    post_all(ctx, bodies.collect()).await?;
    Ok(ids)
}

/// Sends each `(url, body)` POST, `concurrency` at a time, unmeasured; the
/// first failure ends it.
pub(super) async fn post_all(
    ctx: &Arc<Ctx>,
    posts: Vec<(String, String)>,
) -> Result<(), LoadError> {
    let wanted = posts.len();
    let posts = Arc::new(posts);
    let next = Arc::new(AtomicUsize::new(0));
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..ctx.config.concurrency.min(wanted) {
        let (ctx, posts, next, failure) =
            (ctx.clone(), posts.clone(), next.clone(), failure.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((url, body)) = posts.get(i) else {
                    break;
                };
                let outcome = ctx.send(ctx.post(url, body.clone()), Op::Create).await;
                if !outcome.is_ok() {
                    let hint = match outcome {
                        Outcome::Status(401) => " (is the token right?)",
                        _ => "",
                    };
                    let path = url.strip_prefix(&ctx.base).unwrap_or(url);
                    let reason = format!("POST {path}: {}{hint}", outcome.kind());
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                    next.store(wanted, Ordering::SeqCst);
                    break;
                }
                done += 1;
            }
            done
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await.map_err(|e| LoadError::Worker(e.to_string()))?;
    }
    let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failed {
        Some(reason) => Err(LoadError::Seed {
            wanted,
            created,
            reason,
        }),
        None => Ok(()),
    }
}
