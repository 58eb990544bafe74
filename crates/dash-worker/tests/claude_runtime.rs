//! The shipped coding-agent runtime, `deploy/runtimes/claude-code.sh`,
//! against a stand-in `claude` that prints what Claude Code's `stream-json`
//! mode prints (the real CLI needs an account and the network): the task
//! reaches it on stdin, text becomes output lines, each message's usage a
//! priced Dash usage report, the result the agent's result, and a run with
//! no result fails. Needs `jq` (scripts/install-deps.sh installs it).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const FAKE: &str = r#"#!/bin/sh
task=$(cat)
[ "$1" = -p ] || exit 9
echo '{"type":"system","subtype":"init"}'
jq -cn --arg t "$task" --arg a "$*" '{type:"assistant",message:{id:"msg_1",
  content:[{type:"text",text:("got: " + $t + "\nargs: " + $a)}],
  usage:{input_tokens:1000,output_tokens:2000}}}'
[ -n "$FAIL" ] && exit 1
echo '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1"}'
"#;

fn run(fail: bool) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("claude");
    std::fs::write(&fake, FAKE).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/runtimes/claude-code.sh"
    );
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut child = Command::new("/bin/sh")
        .arg(script)
        .env("PATH", path)
        .env("DASH_PRICE_INPUT_PER_MTOK", "3")
        .env("DASH_PRICE_OUTPUT_PER_MTOK", "15")
        .env("DASH_AGENT_MODEL", "-x; rm -rf /")
        .env("FAIL", if fail { "1" } else { "" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sh");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"fix the bug; $(reboot)").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_claude_code_runtime_speaks_the_worker_protocol() {
    let (code, out) = run(false);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "got: fix the bug; $(reboot)",
        "the task as data: {out}"
    );
    assert_eq!(
        lines[1],
        "args: -p --output-format stream-json --verbose --model=-x; rm -rf /"
    );
    let usage: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(usage["dash"], "usage");
    assert_eq!(usage["message_id"], "msg_1");
    assert_eq!(usage["tokens"], 3000);
    // 1000 in at 3/M + 2000 out at 15/M.
    assert!(
        (usage["cost"].as_f64().unwrap() - 0.033).abs() < 1e-12,
        "{usage}"
    );
    let result: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(result["result"]["text"], "done");
}

#[test]
fn a_claude_run_without_a_result_fails() {
    let (code, out) = run(true);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("\"dash\":\"usage\""),
        "usage still reported: {out}"
    );
}
