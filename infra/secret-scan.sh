#!/usr/bin/env bash
# Secret scan: every file git tracks plus untracked, non-ignored files of a repository.
#
#   infra/secret-scan.sh [REPO_DIR]     scan REPO_DIR (default: the repository of the cwd)
#   infra/secret-scan.sh --self-test    plant one secret of each kind in a throw-away repo and
#                                       check that each is found (and a clean tree passes)
#
# Prints `path:line: kind[, kind]` per finding, never the secret itself. Exit status: 0 clean,
# 1 findings, 2 the scanner could not run.
#
# Engine: detect-secrets (PyPI, pinned in infra/requirements-test.txt) from the Python in
# $PYTHON (default: .venv/bin/python of this project), plus TrackLayer detectors defined below.
# Why detect-secrets and not a home-grown scanner: its detectors for vendor tokens (AWS, GitHub,
# Slack, Stripe, private keys, JWT, npm, PyPI, OpenAI, SendGrid, Twilio, ...) are maintained
# upstream, and it honours the inline `pragma: allowlist secret` comment. Tuning:
#   * -n / --no-verify always: by default some detectors send what they find to the vendor
#     (e.g. AWS STS) to check it is live. A scanner must never send a secret anywhere.
#   * HexHighEntropyString off: TrackLayer's tests are full of SHA-256 hex digests (hashed
#     identifiers, golden vectors), which that detector reports as secrets.
#   * KeywordDetector off, replaced by HighEntropyAssignmentDetector below: it reports every
#     `secret = "x"` in test code; ours reports keyword assignments whose value looks random.
#   * IPPublicDetector off: IP addresses are personal data, not secrets, and test fixtures
#     carry documentation-range addresses on purpose.
# No .secrets.baseline: a known non-secret is allow-listed where it stands, with a comment
# `pragma: allowlist secret` at the end of its line (JSON has no comments: add a member such as
# "_": "// pragma: allowlist secret" on the same line, or keep the vector in Rust test code).
set -euo pipefail

readonly DETECT_SECRETS_VERSION="1.5.0"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project_root="$(dirname "$script_dir")"
PYTHON="${PYTHON:-$project_root/.venv/bin/python}"
[[ "$PYTHON" != */* || "$PYTHON" == /* ]] || PYTHON="$PWD/$PYTHON"  # the scan runs from the repo root

die() { echo "secret-scan: $*" >&2; exit 2; }

# Every temporary file lives under one directory, removed when the script exits (also when a
# subshell such as $(scan ...) made the file).
work_dir="$(mktemp -d)"
trap 'rm -rf -- "$work_dir"' EXIT

check_engine() {
  [[ -x "$PYTHON" ]] || command -v "$PYTHON" >/dev/null 2>&1 ||
    die "no Python at $PYTHON. Create the venv: python3 -m venv .venv && .venv/bin/pip install -r infra/requirements-test.txt (or set PYTHON)"
  local have
  have="$("$PYTHON" -c 'from detect_secrets.__version__ import VERSION; print(VERSION)' 2>/dev/null)" ||
    die "detect-secrets is not installed for $PYTHON. Install it: $PYTHON -m pip install detect-secrets==$DETECT_SECRETS_VERSION"
  [[ "$have" == "$DETECT_SECRETS_VERSION" ]] ||
    die "detect-secrets $have found, $DETECT_SECRETS_VERSION expected: $PYTHON -m pip install detect-secrets==$DETECT_SECRETS_VERSION"
}

# TrackLayer's detectors, loaded by detect-secrets as a plugin file.
write_plugins() {
  cat >"$1" <<'PY'
"""TrackLayer detectors for detect-secrets (written by infra/secret-scan.sh)."""
import math
import re
from collections import Counter

from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector

_START = r'(?<![A-Za-z0-9])'


class TrackLayerApiKeyDetector(RegexBasedDetector):
    """tl_<kind>_<region>_<id>_<secret> (DESIGN.md, Keys, secrets, regions)."""
    secret_type = 'TrackLayer API Key'
    denylist = (re.compile(_START + r'tl_[a-z]+_(?:us|eu)_[A-Za-z0-9]+_[A-Za-z0-9]{20,}'),)


class WebhookSigningSecretDetector(RegexBasedDetector):
    """Standard Webhooks / Stripe signing secrets."""
    secret_type = 'Webhook Signing Secret'
    denylist = (re.compile(_START + r'whsec_[A-Za-z0-9+/]{24,}'),)


class StripeTestKeyDetector(RegexBasedDetector):
    """detect-secrets' StripeDetector covers live keys only."""
    secret_type = 'Stripe Test Key'
    denylist = (re.compile(_START + r'(?:sk|rk)_test_[0-9A-Za-z]{24,}'),)


class GitHubFineGrainedTokenDetector(RegexBasedDetector):
    secret_type = 'GitHub Fine-grained Token'
    denylist = (re.compile(_START + r'github_pat_[A-Za-z0-9_]{50,}'),)


_KEYWORD = (r'(?:secret|token|passw(?:or)?d|pwd|api[_-]?key|apikey|access[_-]?key|private[_-]?key'
            r'|signing[_-]?key|credentials?)')
_NAME = r'[A-Za-z0-9_.-]*' + _KEYWORD + r'[A-Za-z0-9_.-]*'
_VALUE = r'[A-Za-z0-9+/=_.~-]{16,}'
# name = "value", name: "value", "name": "value", name := "value", name => "value",
# const NAME: &str = "value", name: Wrapper::from("value")
_QUOTED = re.compile(
    r'(?i)(?<![A-Za-z0-9_])(?P<name>' + _NAME + r')["\']?'
    r'(?:\s*:\s*&?(?:\'static\s+)?[A-Za-z_][A-Za-z0-9_<>:]{0,40})?'
    r'\s*(?::=|=>|=|:)\s*(?:[A-Za-z_][A-Za-z0-9_:]*\(\s*)?(?:r#*)?["\'](?P<value>' + _VALUE + r')["\']'
)
# NAME=value and name: value alone on a line (.env, YAML, INI, shell)
_BARE = re.compile(
    r'(?i)^\s*(?:export\s+)?["\']?(?P<name>' + _NAME + r')["\']?\s*[=:]\s*(?P<value>' + _VALUE
    + r')\s*[,;]?\s*$'
)
# Names that hold no secret although they contain a keyword.
_NOT_SECRET_NAME = re.compile(
    r'(?i)(hash|digest|sha\d*|fingerprint|verifier|_ids?$|name|path|file|url|uri|type|kind|header'
    r'|env|var|field|prefix|len(gth)?$|ttl|expir|count|max|min|version|format|mode|endpoint)'
)
_LOWER_SLUG = re.compile(r'^[a-z0-9]+(?:[._/-][a-z0-9]+)+$')     # a path, module or slug
_CONSTANT = re.compile(r'^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$')       # an env var or constant name


def _entropy(s):
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def looks_random(value):
    if not (re.search(r'[0-9]', value) and re.search(r'[A-Za-z]', value)):
        return False
    if _LOWER_SLUG.match(value) or _CONSTANT.match(value):
        return False
    hex_only = re.fullmatch(r'[0-9a-fA-F]+', value) is not None
    return _entropy(value) >= (3.0 if hex_only else 3.5)


class HighEntropyAssignmentDetector(BasePlugin):
    """A secret-like name (secret, token, password, api_key, ...) assigned a random-looking value."""
    secret_type = 'High Entropy Secret Assignment'

    def analyze_string(self, string):
        for regex in (_QUOTED, _BARE):
            for m in regex.finditer(string):
                if not _NOT_SECRET_NAME.search(m.group('name')) and looks_random(m.group('value')):
                    yield m.group('value')
PY
}

# Files to scan, NUL-separated: tracked + untracked-not-ignored, minus build output, vendored
# environments, lock files and paths that no longer exist in the work tree.
list_files() {
  git -C "$1" ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
    case "/$f" in
      */target/* | */.venv/* | */node_modules/* | */.aws-sam/*) continue ;;
      *.lock | */package-lock.json | */npm-shrinkwrap.json | */pnpm-lock.yaml | */go.sum) continue ;;
    esac
    [[ -f "$1/$f" && ! -L "$1/$f" ]] || continue
    printf '%s\0' "$f"
  done
}

scan() {
  local repo="$1" tmp files=()
  repo="$(git -C "$repo" rev-parse --show-toplevel 2>/dev/null)" || die "$1 is not inside a git work tree"
  check_engine
  while IFS= read -r -d '' f; do files+=("$f"); done < <(list_files "$repo")
  if ((${#files[@]} == 0)); then
    echo "secret-scan: no files to scan in $repo"
    return 0
  fi
  tmp="$(mktemp -d -p "$work_dir")"
  write_plugins "$tmp/tracklayer_detectors.py"
  (
    cd "$repo"
    "$PYTHON" -m detect_secrets scan --no-verify \
      --disable-plugin HexHighEntropyString \
      --disable-plugin KeywordDetector \
      --disable-plugin IPPublicDetector \
      --plugin "$tmp/tracklayer_detectors.py" \
      -- "${files[@]}"
  ) >"$tmp/report.json" || die "detect-secrets failed"
  "$PYTHON" - "$tmp/report.json" "${#files[@]}" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
findings = {}
for path, results in report["results"].items():
    for r in results:
        findings.setdefault((path, r["line_number"]), set()).add(r["type"])
for (path, line), kinds in sorted(findings.items()):
    print(f"{path}:{line}: {', '.join(sorted(kinds))}")
if findings:
    print(f"secret-scan: {len(findings)} finding(s) in {sys.argv[2]} files. Remove the secret "
          "(and rotate it), or, for a published test vector, end its line with a comment "
          "`pragma: allowlist secret`.", file=sys.stderr)
    sys.exit(1)
print(f"secret-scan: no secrets in {sys.argv[2]} files")
PY
}

# Plants generated secrets (never literals of this file, so this file stays clean) in a fresh
# repository and checks that each is reported with its kind and the scan exits 1; then checks
# that the allow-listed test vector and ordinary code pass, and a clean tree exits 0.
self_test() {
  check_engine
  local dir out status=0 failures=0
  dir="$(mktemp -d -p "$work_dir")"
  git -C "$dir" init -q
  "$PYTHON" - "$dir" <<'PY'
import os
import secrets
import string
import sys

d = sys.argv[1]
up, alnum = string.ascii_uppercase + string.digits, string.ascii_letters + string.digits
def rnd(alphabet, n): return ''.join(secrets.choice(alphabet) for _ in range(n))
def write(name, text):
    os.makedirs(os.path.dirname(os.path.join(d, name)) or d, exist_ok=True)
    open(os.path.join(d, name), 'w').write(text)

# Each planted file: the kind the scan must report on line 1.
write('planted/aws_id.env', 'AWS_ACCESS_KEY_ID=' + 'AK' + 'IA' + rnd(up, 16) + '\n')
write('planted/aws_secret.py', 'aws_secret_access_key = "' + rnd(alnum + '+/', 40) + '"\n')
write('planted/key.pem', '-----BEGIN ' + 'RSA PRIVATE' + ' KEY-----\n' + rnd(alnum, 64) + '\n-----END '
      + 'RSA PRIVATE' + ' KEY-----\n')
write('planted/github.txt', 'token ' + 'gh' + 'p_' + rnd(alnum, 36) + '\n')
write('planted/slack.txt', 'xo' + 'xb-' + rnd(string.digits, 12) + '-' + rnd(string.digits, 12) + '-'
      + rnd(string.ascii_lowercase + string.digits, 24) + '\n')
write('planted/stripe.txt', 'STRIPE=' + 's' + 'k_live_' + rnd(alnum, 24) + '\n')
write('planted/assign.toml', 'webhook_token = "' + rnd(alnum, 32) + '"\n')
write('planted/tl_key.rs', 'let key = "' + 't' + 'l_live_eu_' + rnd(alnum, 8) + '_' + rnd(alnum, 32) + '";\n')
write('planted/whsec.rs', 'let s = "' + 'wh' + 'sec_' + rnd(alnum, 32) + '";\n')
# Must pass: the Standard Webhooks spec vector, allow-listed; a SHA-256 digest; indirections.
write('clean/vector.rs', 'const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // pragma: allowlist secret\n'
      'const EMAIL_SHA256: &str = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";\n'
      'let secret = config.webhook_secret.expose_secret();\n'
      'let token_env_var = "TRACKLAYER_ADMIN_TOKEN_FILE";\n')
PY
  declare -A expect=(
    [planted/aws_id.env]="AWS Access Key"
    [planted/aws_secret.py]="AWS Access Key"
    [planted/key.pem]="Private Key"
    [planted/github.txt]="GitHub Token"
    [planted/slack.txt]="Slack Token"
    [planted/stripe.txt]="Stripe Access Key"
    [planted/assign.toml]="High Entropy Secret Assignment"
    [planted/tl_key.rs]="TrackLayer API Key"
    [planted/whsec.rs]="Webhook Signing Secret"
  )
  out="$(scan "$dir" 2>/dev/null)" || status=$?
  if ((status != 1)); then echo "self-test: FAIL planted tree exited $status, expected 1"; failures=$((failures + 1)); fi
  local f
  for f in $(printf '%s\n' "${!expect[@]}" | sort); do
    if grep -q "^$f:1: .*${expect[$f]}" <<<"$out"; then
      echo "self-test: ok   $f -> ${expect[$f]}"
    else
      echo "self-test: FAIL $f not reported as ${expect[$f]}"; failures=$((failures + 1))
    fi
  done
  if grep -q '^clean/' <<<"$out"; then
    echo "self-test: FAIL false positive(s):"; grep '^clean/' <<<"$out"; failures=$((failures + 1))
  else
    echo "self-test: ok   allow-listed vector, SHA-256 digest and indirections not reported"
  fi
  if grep -q 'whsec_\|AKIA\|BEGIN' <<<"$out"; then
    echo "self-test: FAIL the report shows secret material"; failures=$((failures + 1))
  fi
  rm -rf "${dir:?}/planted"
  status=0
  scan "$dir" >/dev/null 2>&1 || status=$?
  if ((status == 0)); then echo "self-test: ok   clean tree exits 0"
  else echo "self-test: FAIL clean tree exited $status"; failures=$((failures + 1)); fi
  if ((failures > 0)); then echo "self-test: $failures failure(s)"; return 1; fi
  echo "self-test: all checks passed"
}

case "${1:-}" in
  --self-test) self_test ;;
  -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | cut -c3- ;;
  *) scan "${1:-.}" ;;
esac
