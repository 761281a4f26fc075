#!/usr/bin/env bash
# Fails when dist/ (or a file generated from src/, such as the lock functions in
# backup-openclaw.sh) is not exactly what `npm run package` builds from src/ and the locked
# dependencies. CI runs it after a clean `npm ci --ignore-scripts` (install scripts would let
# native .node files from this machine slip into the bundle).
set -euo pipefail
cd "$(dirname "$0")/../.."

npm run --silent package >/dev/null
changes=$(git status --porcelain -- dist src/registry/registry-validator.generated.js src/registry/registry-validator.generated.d.ts src/input-defaults.generated.ts scripts/deployment/backup-openclaw.sh)
if [ -n "$changes" ]; then
  echo "dist/ or a generated file is stale: it differs from a fresh build of src/:" >&2
  echo "$changes" >&2
  echo "Run 'npm ci --ignore-scripts && npm run package' and commit dist/." >&2
  exit 1
fi
# The bundles run on Linux runners and load no native code: an .exe or .node file in dist/ is a
# library's asset slipping in (ssh2's pagent.exe is dropped by scripts/dev/drop-pageant.mjs).
stray=$(find dist \( -name '*.exe' -o -name '*.node' \) -print)
if [ -n "$stray" ]; then
  echo "dist/ holds files the action never runs:" >&2
  echo "$stray" >&2
  exit 1
fi
echo "dist/ matches a fresh build."
