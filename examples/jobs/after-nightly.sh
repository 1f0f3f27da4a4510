#!/bin/sh
# The README tour's follow-up: submitted with --after, it starts only once the nightly job succeeded.
set -eu
echo "after-nightly: the nightly job succeeded; publishing at $(date +%H:%M:%S)"
