#!/bin/sh
# The README tour's nightly job: a few seconds of "work", with output to follow (freight jobs logs -f).
set -eu
echo "nightly: started on $(uname -n) at $(date +%H:%M:%S)"
for step in extract transform load; do
    echo "nightly: $step"
    sleep 1
done
echo "nightly: done"
