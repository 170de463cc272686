#!/usr/bin/env bash
# Installs the LiteLLM proxy (the benchmark's peer) into its own virtualenv,
# .tools/litellm-venv. Pinned to 1.106.2 so every run measures the same proxy
# (and never pulls an unreviewed release). Idempotent: a venv that already has
# the pinned version is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/litellm-venv"
version="1.106.2"
if [[ -x "$venv/bin/litellm" ]] &&
  [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" == "$version" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "litellm[proxy]==$version"
installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
if [[ "$installed" != "$version" ]]; then
  echo "expected litellm $version in $venv, found $installed" >&2
  exit 1
fi
echo "litellm $installed in $venv"
