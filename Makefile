# vtopt — the two commands a fresh machine needs:
#   make demo   set up, build, and run vtopt's main job on the bundled default model
#   make test   set up, build, and run every test (plus an ASan+UBSan build of the same tests)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all setup build build-asan demo test test-fast test-slow clean

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVTOPT_SANITIZE=ON

build-asan: setup $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

# Every test through ctest, then the same tests built with ASan+UBSan (any report fails).
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE slow
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) -LE 'slow|noasan'

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE slow

# The benchmark-size zoo (about 1.4 GB generated, minutes): configured on demand.
test-slow: build
	cmake -S . -B $(BUILD) -DVTOPT_SLOW_TESTS=ON
	cd $(BUILD) && ctest --output-on-failure -L slow

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
