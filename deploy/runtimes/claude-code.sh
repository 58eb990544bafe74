#!/bin/sh
# A Dash runtime (docs/WORKER.md) around Anthropic's Claude Code CLI.
#
# The worker runs this directly (no shell line is built from the task): the
# task arrives on stdin and goes to `claude -p` on its stdin. Each assistant
# message's text becomes output lines; its token usage becomes a Dash usage
# report, priced per million tokens from the environment, so that the
# swarm's budget can stop the agent between messages. The final result is
# reported as the agent's result; a failed run exits non-zero.
#
# Needs: claude (Claude Code CLI), jq. Set DASH_PRICE_INPUT_PER_MTOK and
# DASH_PRICE_OUTPUT_PER_MTOK to the model's prices in the swarm's currency.
set -eu
: "${DASH_PRICE_INPUT_PER_MTOK:?set the model's input price per million tokens}"
: "${DASH_PRICE_OUTPUT_PER_MTOK:?set the model's output price per million tokens}"
set -- -p --output-format stream-json --verbose
if [ -n "${DASH_AGENT_MODEL:-}" ]; then
    # One argument, never split or read as another flag.
    set -- "$@" "--model=$DASH_AGENT_MODEL"
fi

claude "$@" |
jq --unbuffered -c \
   --argjson pin "$DASH_PRICE_INPUT_PER_MTOK" \
   --argjson pout "$DASH_PRICE_OUTPUT_PER_MTOK" '
  if .type == "assistant" then
    ( .message.content[]? | select(.type == "text") | .text | split("\n")[] ),
    ( .message.usage as $u | select($u != null) |
      { dash: "usage",
        message_id: .message.id,
        tokens: (($u.input_tokens // 0) + ($u.output_tokens // 0)),
        cost: ((($u.input_tokens // 0) * $pin + ($u.output_tokens // 0) * $pout) / 1000000) } )
  elif .type == "result" then
    if .is_error then error("claude: " + (.result // "failed")) else
    { dash: "result", result: { text: .result, session: .session_id } } end
  else empty end' |
{
    saw_result=0
    while IFS= read -r line; do
        # jq -c prints strings quoted: unquote plain text lines, pass reports on.
        case "$line" in
            '{"dash":"result"'*) saw_result=1; printf '%s\n' "$line" ;;
            \{*) printf '%s\n' "$line" ;;
            *) printf '%s\n' "$line" | jq -r . ;;
        esac
    done
    # No result: claude failed or was cut off (the pipeline's status is this).
    [ "$saw_result" = 1 ] || { echo "claude-code runtime: no result from claude" >&2; exit 1; }
}
