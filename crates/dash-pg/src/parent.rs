//! [`ParentThread`]: one thread that lives as long as its owner and runs
//! every step that starts a child process. A child started with a
//! parent-death signal (`setpriv --pdeathsig KILL`) is bound to the thread
//! that forked it, not to the process: started from a short-lived thread
//! (tokio's blocking pool retires idle threads), it would be killed when
//! that thread exits. Started here, it dies exactly when its owner does.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The thread children are started from; it ends when the last handle drops.
#[derive(Clone)]
pub struct ParentThread {
    jobs: mpsc::Sender<Job>,
}

impl ParentThread {
    /// Starts the thread, named `name` (as `ps -L` shows it).
    pub fn start(name: &str) -> ParentThread {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawn a parent thread");
        ParentThread { jobs }
    }

    /// Runs `f` on the thread and waits for it without blocking the runtime.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("the parent thread lives as long as its handles");
        rx.await.expect("the parent thread finishes every job")
    }

    /// Runs `f` on the thread and blocks the caller until it is done.
    pub fn run_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("the parent thread lives as long as its handles");
        rx.recv().expect("the parent thread finishes every job")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_one_named_thread() {
        let t = ParentThread::start("dash-test-parent");
        let a = t.run_blocking(|| std::thread::current().id());
        let b = t.run_blocking(|| std::thread::current().name().map(String::from));
        assert_ne!(a, std::thread::current().id());
        assert_eq!(b.as_deref(), Some("dash-test-parent"));
        assert_eq!(t.run_blocking(move || std::thread::current().id()), a);
    }
}
