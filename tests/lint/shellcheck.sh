#!/usr/bin/env bash
# tests/lint/shellcheck.sh SOURCE_DIR — owns the lint.shellcheck test: every
# shell script of the checkout (*.sh, *.bash, or a file whose first line is a
# sh/bash shebang or a `# shellcheck shell=` directive), found by git ls-files
# (tracked and untracked, not ignored) or by find when git cannot be used, is
# checked by Debian's shellcheck at every severity, following sourced files
# (-x, paths relative to each script). Clean means no finding at all; a check
# that must be disabled is disabled in the script, next to a comment why.
set -euo pipefail
SRC=$(cd "${1:?usage: shellcheck.sh SOURCE_DIR}" && pwd -P)
cd "$SRC"
command -v shellcheck >/dev/null || { echo "FAIL: shellcheck not installed (scripts/install-deps installs it)" >&2; exit 1; }

list_files() {
  if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$SRC" ls-files --cached --others --exclude-standard
  else
    find . \( -name .git -o -name 'build*' -o -name .run \) -prune -o -type f -print | sed 's|^\./||'
  fi
}

is_shell() {
  case $1 in *.sh | *.bash) return 0 ;; esac
  local first
  IFS= read -r first <"$1" 2>/dev/null || return 1
  [[ $first =~ ^#!\ ?(/usr)?/bin/(env\ +)?(ba|da)?sh([[:space:]]|$) || $first == '# shellcheck shell='* ]]
}

scripts=()
while IFS= read -r f; do
  [[ -f $f && ! -L $f ]] || continue
  is_shell "$f" && scripts+=("$f")
done < <(list_files | sort -u)

# The test must be looking at the real tree: these are shell scripts for sure.
for must in scripts/quickstart scripts/install-deps scripts/test tests/harness/servers.sh scripts/lib/server-bins.sh; do
  [[ " ${scripts[*]} " == *" $must "* ]] || { echo "FAIL: $must not found among the shell scripts of $SRC" >&2; exit 1; }
done

echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p') over ${#scripts[@]} scripts"
if ! shellcheck -x -P SCRIPTDIR -S style "${scripts[@]}"; then
  echo "FAIL: shellcheck findings above (fix the script; disable a check only with a comment saying why)" >&2
  exit 1
fi
printf '  %s\n' "${scripts[@]}"
echo "lint.shellcheck: ok (${#scripts[@]} scripts clean)"
