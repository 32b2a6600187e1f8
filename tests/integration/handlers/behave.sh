#!/usr/bin/env bash
# A job handler for the worker tests: behaves as $1 says, counting attempts per job in
# $JB_TEST_STATE (a directory) and appending "<job id> <jobbridge pid>" to $JB_TEST_STATE/ran
# (the parent of our parent: each run has a shepherd process between jobbridge and us).
#   flaky N   fail (exit 1) until attempt N, then succeed with {"attempts": N}
#   fail      always fail (exit 1)
#   bad       exit 65: a non-retriable failure
#   sleep S   sleep S seconds, then succeed
set -u
mode=$1
input=$(cat)
state=${JB_TEST_STATE:?}
count_file="$state/$JOBBRIDGE_JOB_ID.attempts"
attempt=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
echo "$attempt" >"$count_file"
read -r _ _ _ jobbridge_pid _ <"/proc/$PPID/stat"
echo "$JOBBRIDGE_JOB_ID $jobbridge_pid" >>"$state/ran"
case "$mode" in
  flaky) if [ "$attempt" -lt "$2" ]; then echo "attempt $attempt failed" >&2; exit 1; fi
         echo "{\"attempts\": $attempt, \"type\": \"$JOBBRIDGE_JOB_TYPE\"}" ;;
  fail)  echo "line one"; echo "always failing (attempt $attempt)" >&2; exit 1 ;;
  bad)   echo "the payload is unusable" >&2; exit 65 ;;
  sleep) sleep "$2"; echo "{\"slept\": $2, \"input_ok\": $(echo "$input" | grep -c '"payload"')}" ;;
esac
