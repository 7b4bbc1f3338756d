# Thin wrapper over CMake. The README's two commands: `make demo` and `make test`.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all build deps deps-test test unit e2e asan fuzz memcheck demo bench clean

all: build

# What building needs, which is all `make demo` needs (it runs nothing but build/apigate).
deps:
	@scripts/deps.sh build

# The servers and tools the tests run against (nginx, redis, postgres, valgrind, clang, ...).
deps-test:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Every test: unit (cmocka, fuzz corpora) and end-to-end against real servers.
test: deps-test build
	@ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) -L unit
	@ctest --test-dir $(BUILD) --output-on-failure -L e2e

unit: deps-test build
	@ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) -L unit

e2e: deps-test build
	@ctest --test-dir $(BUILD) --output-on-failure -L e2e

# ASan + UBSan build running the unit tests and the core e2e tests.
asan: deps-test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=asan >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build-asan --output-on-failure -j$(JOBS) -L unit
	@ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build-asan --output-on-failure -L e2e -R 'e2e/[01][0-9]_'

# Unit tests under valgrind.
memcheck: deps-test build
	@ctest --test-dir $(BUILD) --output-on-failure -T memcheck -L unit -E 'corpus|layering'

# libFuzzer runs (FUZZ_SECONDS each, default 30) of the HTTP head parser, the body framing
# reader, the response parser, the HTTP/2 session (h2sess.c) and the whole proxy request path
# (fuzz_proxy: client session, cache + resil filters, upstream), and what doctor reads from the
# servers it probes (fuzz_doctor: INFO, CLUSTER NODES, /stats), and the content-coding decoders
# (fuzz_codec: an origin's gzip/br/zstd body), from their seed corpora. A crash fails the target
# (the fuzzer's exit code, not tail's).
fuzz: deps-test
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=asan -DAG_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzz_h1parse fuzz_h1body fuzz_h1response fuzz_h2sess \
	  fuzz_proxy fuzz_doctor fuzz_codec
	@mkdir -p build-fuzz/corpus && cp tests/fuzz/corpus/h1parse/* build-fuzz/corpus/
	@build-fuzz/tests/fuzz_h1parse -max_total_time=$${FUZZ_SECONDS:-30} -max_len=8192 \
	  -artifact_prefix=build-fuzz/ -dict=tests/fuzz/h1parse.dict build-fuzz/corpus >build-fuzz/fuzz_h1parse.log 2>&1; \
	  rc=$$?; tail -5 build-fuzz/fuzz_h1parse.log; exit $$rc
	@mkdir -p build-fuzz/corpus-h1body && cp tests/fuzz/corpus/h1body/* build-fuzz/corpus-h1body/
	@build-fuzz/tests/fuzz_h1body -max_total_time=$${FUZZ_SECONDS:-30} -max_len=4096 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus-h1body >build-fuzz/fuzz_h1body.log 2>&1; \
	  rc=$$?; tail -5 build-fuzz/fuzz_h1body.log; exit $$rc
	@mkdir -p build-fuzz/corpus-h1response && cp tests/fuzz/corpus/h1response/* build-fuzz/corpus-h1response/
	@build-fuzz/tests/fuzz_h1response -max_total_time=$${FUZZ_SECONDS:-30} -max_len=4096 \
	  -artifact_prefix=build-fuzz/ -dict=tests/fuzz/h1parse.dict build-fuzz/corpus-h1response \
	  >build-fuzz/fuzz_h1response.log 2>&1; rc=$$?; tail -5 build-fuzz/fuzz_h1response.log; exit $$rc
	@mkdir -p build-fuzz/corpus-h2sess && cp tests/fuzz/corpus/h2sess/* build-fuzz/corpus-h2sess/
	@build-fuzz/tests/fuzz_h2sess -max_total_time=$${FUZZ_SECONDS:-30} -max_len=4096 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus-h2sess \
	  >build-fuzz/fuzz_h2sess.log 2>&1; rc=$$?; tail -5 build-fuzz/fuzz_h2sess.log; exit $$rc
	@mkdir -p build-fuzz/corpus-proxy && cp tests/fuzz/corpus/proxy/* build-fuzz/corpus-proxy/
	@build-fuzz/tests/fuzz_proxy -max_total_time=$${FUZZ_SECONDS:-30} -max_len=4096 \
	  -artifact_prefix=build-fuzz/ -dict=tests/fuzz/h1parse.dict build-fuzz/corpus-proxy \
	  >build-fuzz/fuzz_proxy.log 2>&1; rc=$$?; tail -5 build-fuzz/fuzz_proxy.log; exit $$rc
	@mkdir -p build-fuzz/corpus-doctor && cp tests/fuzz/corpus/doctor/* build-fuzz/corpus-doctor/
	@build-fuzz/tests/fuzz_doctor -max_total_time=$${FUZZ_SECONDS:-30} -max_len=8192 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus-doctor \
	  >build-fuzz/fuzz_doctor.log 2>&1; rc=$$?; tail -5 build-fuzz/fuzz_doctor.log; exit $$rc
	@mkdir -p build-fuzz/corpus-codec && cp tests/fuzz/corpus/codec/* build-fuzz/corpus-codec/
	@build-fuzz/tests/fuzz_codec -max_total_time=$${FUZZ_SECONDS:-30} -max_len=8192 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus-codec \
	  >build-fuzz/fuzz_codec.log 2>&1; rc=$$?; tail -5 build-fuzz/fuzz_codec.log; exit $$rc

demo: build
	@$(BUILD)/apigate demo

bench: build
	@scripts/deps.sh bench
	@bench/run.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
