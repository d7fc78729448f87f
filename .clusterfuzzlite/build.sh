#!/bin/bash -eu
# Builds smmufuzz's fuzzers for ClusterFuzzLite / OSS-Fuzz, in the base-builder-python image, from the
# checkout (the working directory): one libFuzzer fuzzer per smmufuzz target, packaged by the image's
# compile_python_fuzzer (PyInstaller), with <name>_seed_corpus.zip, <name>.dict and <name>.options beside it
# in $OUT. `smmufuzz oss-fuzz export` writes them; it prints which fuzzer is which target.
#
# Kernel-C targets (kc*) are not packaged: they need a Linux tree and compile io-pgtable-arm.c at start-up.
# SMMUFUZZ_CFL_TARGETS (target names, space-separated) packages only those; default: every other target.
# Targets with planted bugs (gather:<driver> with a BUGGY variant, see `smmufuzz list`) crash by design.
#
# tests/test_oss_fuzz.py runs this outside Docker with the builder's variables set and
# scripts/compile_python_fuzzer standing in for the image's.
project=$PWD
pip3 install "$project"

fuzzers="$WORK/smmufuzz-fuzzers"
rm -rf "$fuzzers"
targets=()
for t in ${SMMUFUZZ_CFL_TARGETS:-}; do
  targets+=(--target "$t")
done
python3 -m smmufuzz.cli oss-fuzz export --out "$fuzzers" --corpus "$project/corpus" ${targets[@]+"${targets[@]}"}

# the checkout's smmufuzz (found by path: PyInstaller does not follow an editable install's import hook), all
# of it, for what it imports by name (the instrumented models); what only the benchmark and `smmufuzz cov`
# use stays out (a coverage build's stub imports coverage, so it stays in there)
options=(--paths "$project" --collect-submodules smmufuzz --exclude-module hypothesis --exclude-module numpy)
if [ "${SANITIZER:-}" != coverage ]; then
  options+=(--exclude-module coverage)
fi
for fuzzer in "$fuzzers"/*_fuzzer.py; do
  compile_python_fuzzer "$fuzzer" "${options[@]}"
done
cp "$fuzzers"/*_seed_corpus.zip "$fuzzers"/*.dict "$fuzzers"/*.options "$OUT"/
