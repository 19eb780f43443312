# Shared by .ci/run and .ci/wheel (sourced, not run).

python_for() {  # the first interpreter that really runs and is exactly Python $1 (pyenv shims may exist but fail)
  local want=$1 candidate
  for candidate in "python$want" "$HOME"/.pyenv/versions/"$want".*/bin/python; do
    if "$candidate" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$want')" >/dev/null 2>&1; then
      "$candidate" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}
