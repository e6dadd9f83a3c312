#!/bin/sh
# npm test's checks before the tests run, all at once: the type check with ESLint's type-aware
# rules (one process sharing one program per project: test/check-code.ts), Prettier and the build
# each keep about one core busy, so on a machine with two or more they finish sooner side by side
# than one after another. Each prints its own findings; fails when any of them fails.
node test/check-code.ts & code=$!
npm run lint:format --silent & format=$!
npm run build --silent & build=$!
failed=0
for job in $code $format $build; do wait "$job" || failed=1; done
exit $failed
