//! Asking before a change: on a terminal the operator types `yes`; with no
//! terminal nobody can answer, so the command refuses unless `--yes` was given
//! (it never waits for input that cannot come).

use std::io::{BufRead, IsTerminal, Write};

use super::RunbookError;

/// Asks `question` on stderr and reads the answer from stdin, unless `yes`.
/// `action` completes "refusing to ...", e.g. "terminate 3 sessions".
pub fn confirm(action: &str, question: &str, yes: bool) -> Result<(), RunbookError> {
    let tty = std::io::stdin().is_terminal();
    confirm_with(
        action,
        question,
        yes,
        tty,
        &mut std::io::stdin().lock(),
        &mut std::io::stderr(),
    )
}

/// [`confirm`] with the terminal test and the streams passed in.
pub fn confirm_with(
    action: &str,
    question: &str,
    yes: bool,
    tty: bool,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<(), RunbookError> {
    if yes {
        return Ok(());
    }
    if !tty {
        return Err(RunbookError::NeedsYes {
            action: action.to_string(),
        });
    }
    let _ = write!(output, "{question}\nType 'yes' to continue: ");
    let _ = output.flush();
    let mut answer = String::new();
    input
        .read_line(&mut answer)
        .map_err(|e| RunbookError::io("read the answer", e))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(()),
        _ => Err(RunbookError::Declined {
            action: action.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(yes: bool, tty: bool, answer: &str) -> Result<(), RunbookError> {
        let mut out = Vec::new();
        confirm_with(
            "do it",
            "Do it?",
            yes,
            tty,
            &mut answer.as_bytes(),
            &mut out,
        )
    }

    #[test]
    fn yes_flag_skips_the_question() {
        assert!(ask(true, false, "").is_ok());
    }

    #[test]
    fn no_terminal_refuses_and_names_the_flag() {
        let e = ask(false, false, "yes\n").unwrap_err();
        assert!(matches!(e, RunbookError::NeedsYes { .. }));
        assert!(e.to_string().contains("--yes"), "{e}");
    }

    #[test]
    fn only_yes_confirms() {
        assert!(ask(false, true, "yes\n").is_ok());
        assert!(ask(false, true, "Y\n").is_ok());
        assert!(matches!(
            ask(false, true, "no\n"),
            Err(RunbookError::Declined { .. })
        ));
        assert!(matches!(
            ask(false, true, ""),
            Err(RunbookError::Declined { .. })
        ));
    }
}
