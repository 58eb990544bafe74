//! What `dashctl swarm` and `dashctl agent` share: the API flags, a client
//! that renders the API's error body and maps its status to an exit code,
//! lists followed across pages, and caller-provided text printed as data.

use clap::Args;
use dash_runbook::api_client::ApiClient;
use dash_runbook::{ApiFlags, RunbookError, Target};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

mod print;

pub use print::*;

/// The exit codes of every `dashctl swarm` and `dashctl agent` command.
pub const EXIT_CODES: &str = "Exit codes:
  0    done
  1    failed: the API could not be reached, or answered with an error of its own (5xx, a timeout)
  2    bad usage: a bad flag, no API token or a rejected one (401), or a request the API rejected as invalid (400, 413, 422)
  3    not found (404): no swarm or agent with that id
  4    refused: the change is not allowed in the current state (409, e.g. pausing a paused swarm or killing a finished agent), or no --yes without a terminal
  130  interrupted (Ctrl-C)

An API error prints as `dashctl: <code>: <message>`. Text from the API (names, tasks, log lines) is printed as data: control characters show escaped (ESC as \\x1b); --json prints the API's JSON as it came.";

/// The largest page the API serves.
pub const MAX_PAGE: usize = 500;

/// Options every `dashctl swarm` and `dashctl agent` command takes.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Print the API's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The API's base URL [default: DASH_API_URL, else beside `dashctl up` the one $DASH_HOME/cluster.json records, else http://127.0.0.1:$DASH_API_PORT, else http://127.0.0.1:3001].
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// The API token [default: DASH_API_TOKEN, else beside `dashctl up` the one $DASH_HOME/cluster.json records, else the first of DASH_API_TOKENS].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// One swarm or agent, by id.
#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Its id, in full as `list` prints it.
    pub id: Uuid,
}

/// How long a list may get.
#[derive(Debug, Args)]
pub struct LimitArg {
    /// At most this many (the API's pages are followed until then).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
}

/// Why a command did not do what it was asked, and its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The API answered with an error body; `hint` says what to do.
    Answered {
        status: u16,
        code: String,
        message: String,
        hint: Option<String>,
    },
    /// The API did not answer at all.
    Unreachable {
        url: String,
        origin: String,
        message: String,
    },
    Usage(String),
    Refused(String),
    Failed(String),
    /// Ctrl-C.
    Interrupted,
    /// Whoever read stdout went away (`| head`): nothing more to say.
    Closed,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Answered { status, .. } => match status {
                400 | 401 | 413 | 415 | 422 => 2,
                404 => 3,
                409 => 4,
                _ => 1,
            },
            Failure::Usage(_) => 2,
            Failure::Refused(_) => 4,
            Failure::Interrupted => 130,
            Failure::Closed => 0,
            Failure::Unreachable { .. } | Failure::Failed(_) => 1,
        }
    }

    /// What is printed on stderr (nothing for Ctrl-C or a closed pipe).
    pub fn render(&self) -> Option<String> {
        Some(match self {
            Failure::Answered {
                code,
                message,
                hint,
                ..
            } => {
                let hint = hint.as_ref().map_or(String::new(), |h| format!("\n  {h}"));
                format!("dashctl: {}: {}{hint}", clean(code), clean(message))
            }
            Failure::Unreachable {
                url,
                origin,
                message,
            } => format!(
                "dashctl: unreachable: no answer from the API at {}: {}\n  the URL came from {origin}; point dashctl at the API with --api URL or DASH_API_URL, or set DASH_HOME to the directory of a running `dashctl up`",
                clean(url),
                clean(&message.replace(&format!(" for url ({url})"), ""))
            ),
            Failure::Usage(m) => format!("dashctl: usage: {m}"),
            Failure::Refused(m) => format!("dashctl: refused: {m}"),
            Failure::Failed(m) => format!("dashctl: error: {m}"),
            Failure::Interrupted | Failure::Closed => return None,
        })
    }
}

impl From<RunbookError> for Failure {
    fn from(e: RunbookError) -> Failure {
        match e {
            RunbookError::NeedsYes { .. } | RunbookError::Declined { .. } => {
                Failure::Refused(e.to_string())
            }
            e if e.is_usage() => Failure::Usage(e.to_string()),
            e => Failure::Failed(e.to_string()),
        }
    }
}

/// Prints the failure, if any, and returns the exit code.
pub fn finish(r: Result<u8, Failure>) -> anyhow::Result<u8> {
    Ok(match r {
        Ok(code) => code,
        Err(f) => {
            if let Some(text) = f.render() {
                eprintln!("{text}");
            }
            f.exit_code()
        }
    })
}

/// The API as one command sees it.
pub struct Api {
    client: ApiClient,
    /// Where the URL came from, for "cannot reach" messages.
    origin: String,
    pub json: bool,
}

impl Api {
    pub fn new(a: &ApiArgs) -> Result<Api, Failure> {
        let flags = ApiFlags {
            api: a.api.clone(),
            metrics: None,
            token: a.token.clone(),
        };
        let target = Target::from_env(&flags)?;
        Ok(Api {
            client: ApiClient::new(target.api),
            origin: origin(&flags),
            json: a.json,
        })
    }

    fn unreachable(&self, e: RunbookError) -> Failure {
        match e {
            RunbookError::Api { url, message } => Failure::Unreachable {
                url,
                origin: self.origin.clone(),
                message,
            },
            e => e.into(),
        }
    }

    /// `METHOD /api/v1{path}`: the body of a 2xx answer, else the failure.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let path = format!("/api/v1{path}");
        let a = (self.client.send(method, &path, body).await).map_err(|e| self.unreachable(e))?;
        if a.ok() {
            return Ok(a.body);
        }
        let text = |p: &str| {
            a.body
                .pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let code = text("/error/code").unwrap_or_else(|| format!("http_{}", a.status));
        let message = text("/error/message").unwrap_or_else(|| a.describe());
        let hint = (a.status == 401).then(|| match self.client.endpoint.token.is_some() {
            true => "the API did not accept the token: pass one of its DASH_API_TOKENS with --token or DASH_API_TOKEN".to_string(),
            false => "no API token was given: pass one with --token or DASH_API_TOKEN (one of the API's DASH_API_TOKENS), or run beside `dashctl up`, whose $DASH_HOME/cluster.json records it".to_string(),
        });
        Err(Failure::Answered {
            status: a.status,
            code,
            message,
            hint,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        self.call(Method::POST, path, body).await
    }

    /// Up to `limit` items of a list, following `next_cursor` across pages.
    /// `query` is `key=value&...` (values URL-safe), or empty.
    pub async fn list(&self, path: &str, query: &str, limit: usize) -> Result<Vec<Value>, Failure> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        while items.len() < limit {
            let page = (limit - items.len()).min(MAX_PAGE);
            let mut url = format!("{path}?limit={page}");
            if !query.is_empty() {
                url = format!("{url}&{query}");
            }
            if let Some(c) = &cursor {
                url = format!("{url}&cursor={c}");
            }
            let body = self.get(&url).await?;
            let got = body.get("items").and_then(Value::as_array);
            items.extend(got.into_iter().flatten().cloned());
            cursor = body
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(url_safe);
            if cursor.is_none() || got.is_none_or(Vec::is_empty) {
                break;
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    /// Opens the live `/api/v1{path}` stream.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, RunbookError> {
        self.client.open_stream(&format!("/api/v1{path}")).await
    }
}

/// Where the API URL comes from, in the order `Target` resolves it.
fn origin(flags: &ApiFlags) -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let home = super::dash_home();
    let record = dash_platform::Topology::path(&home);
    if flags.api.is_some() {
        "--api".into()
    } else if var("DASH_API_URL").is_some() {
        "DASH_API_URL".into()
    } else if record.exists() && var("DATABASE_URL").is_none() && var("DATABASE_HOST").is_none() {
        format!("the `dashctl up` record {}", record.display())
    } else if var("DASH_API_PORT").is_some() {
        "DASH_API_PORT".into()
    } else {
        format!(
            "the default (no --api, DASH_API_URL or DASH_API_PORT, and no {})",
            record.display()
        )
    }
}

/// Keeps only URL-safe characters of a cursor the API sent (they all are).
fn url_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.~".contains(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_status() {
        let answered = |status| Failure::Answered {
            status,
            code: "x".into(),
            message: "y".into(),
            hint: None,
        };
        let codes: Vec<u8> = [400, 401, 404, 409, 422, 500, 503]
            .into_iter()
            .map(|s| answered(s).exit_code())
            .collect();
        assert_eq!(codes, [2, 2, 3, 4, 2, 1, 1]);
        assert_eq!(
            answered(404).render().unwrap(),
            "dashctl: x: y",
            "the API's code and message"
        );
    }
}
