#!/usr/bin/env bash
# Builds the event-parser fuzz target with clang (libFuzzer + ASan + UBSan) and runs it for a
# bounded time (FUZZ_SECONDS, default 60). Exit non-zero on a crash or sanitizer report.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
mkdir -p "$out/corpus"
cp "$root"/tests/fuzz/corpus/* "$out/corpus/"
srcs=("$root"/src/core/*.c) # all of core: tests/check_layers.sh keeps it free of adapters
clang -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$root/include" -I"$root/src" "$root/tests/fuzz/fuzz_event.c" "${srcs[@]}" \
  $(pkg-config --cflags --libs jansson uuid gnutls) -pthread -lm -o "$out/fuzz_event"
"$out/fuzz_event" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096 -rss_limit_mb=1024 \
  -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 15
