# Sourced by the scripts: load_presets PRESET fills METHOD_FLAGS[name] with each registered method's flags for
# PRESET (paper, cpu or smoke; from Method.presets) and ALL_METHODS with the names, in registration order.
declare -A METHOD_FLAGS
ALL_METHODS=()
load_presets() {
  local name flags
  while read -r name flags; do
    METHOD_FLAGS[$name]=$flags
    ALL_METHODS+=("$name")
  done < <(python scripts/method_flags.py "$1")
}

# check_method NAME: a one-line error and status 2 for a name that is not a registered method.
check_method() {
  [ -n "${METHOD_FLAGS[$1]+set}" ] || { echo "unknown method '$1'; choose from: ${ALL_METHODS[*]}" >&2; return 2; }
}

# check_methods NAME...: check_method for every name, so that a typo is refused before any run starts.
check_methods() {
  local method
  for method in "$@"; do check_method "$method" || return 2; done
}
