#!/usr/bin/env bash
# Builds the webhook request fuzz target (tests/fuzz/fuzz_http.c) with clang (libFuzzer + ASan +
# UBSan) and runs it for a bounded time (FUZZ_SECONDS, default 60). Exit non-zero on a crash or
# sanitizer report. Links all of core and the pure webhook files of src/http (no libmicrohttpd).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
mkdir -p "$out/corpus_http"
cp "$root"/tests/fuzz/corpus_http/* "$out/corpus_http/"
srcs=("$root"/src/core/*.c "$root"/src/http/webhook_sig.c "$root"/src/http/webhook_event.c)
clang -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$root/include" -I"$root/src" "$root/tests/fuzz/fuzz_http.c" "${srcs[@]}" \
  $(pkg-config --cflags --libs jansson uuid gnutls) -pthread -lm -o "$out/fuzz_http"
"$out/fuzz_http" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=4096 -rss_limit_mb=1024 \
  -print_final_stats=1 "$out/corpus_http" 2>&1 | tail -n 15
