#!/usr/bin/env bash
# The hexagon, checked: src/core (the domain) includes no adapter header and calls no function
# defined in an adapter or the app; each adapter (src/amqp, src/postgres, src/handlers) includes
# and calls only the ports (include/jobbridge), core and itself; only src/app wires them all.
# A function's home is the folder whose .c file defines it (not where it is declared), so a port
# function defined in an adapter and called from elsewhere is caught too.
# Usage: bash tests/check_layers.sh [ROOT]. Prints each violation; exit 1 if there is any.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root/src" || exit 2
layers="core amqp postgres handlers app"
adapters="amqp postgres handlers"
status=0

# The non-static functions a folder's .c files define: "name" per line.
defined() {
  grep -hE '^[A-Za-z_][A-Za-z0-9_ ]*[ *]\**(jb_[A-Za-z0-9_]+)\(' "$1"/*.c |
    grep -vE '^(static|typedef|extern) ' |
    sed -E 's/^[A-Za-z_][A-Za-z0-9_ ]*[ *]\**(jb_[A-Za-z0-9_]+)\(.*/\1/' | sort -u
}

# may_use LAYER OTHER: whether LAYER may include or call OTHER.
may_use() {
  [ "$1" = "$2" ] || [ "$1" = app ] || [ "$2" = core ]
}

for layer in $layers; do
  for other in $layers; do
    may_use "$layer" "$other" && continue
    # Includes of the other folder's headers.
    if hits=$(grep -nE "#include \"$other/" "$layer"/*.c "$layer"/*.h 2>/dev/null); then
      echo "check_layers: src/$layer includes src/$other (not allowed):"
      echo "$hits" | sed 's/^/  src\//'
      status=1
    fi
    # Calls of functions the other folder defines.
    names=$(defined "$other")
    [ -n "$names" ] || continue
    pattern="\\b($(echo "$names" | paste -sd'|'))\\b"
    if hits=$(grep -nE "$pattern" "$layer"/*.c "$layer"/*.h 2>/dev/null | grep -vE ':[0-9]+:\s*(/\*|\*)'); then
      echo "check_layers: src/$layer uses functions defined in src/$other (not allowed):"
      echo "$hits" | sed 's/^/  src\//'
      status=1
    fi
  done
done
[ $status = 0 ] && echo "check_layers: ok (core uses no adapter; adapters use only ports, core and themselves)"
exit $status
