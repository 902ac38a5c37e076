# cutover: the nginx module, its companion programs, the tests.
#
#   make          module + programs into build/
#   make demo     install what is missing, build, run the whole dual-run demo
#   make test     install what is missing, build, unit tests (valgrind) and
#                 integration tests against real nginx and PostgreSQL
#   make bench    benchmarks, each beside its baseline, printed as ratios

SHELL := /bin/bash
.DEFAULT_GOAL := all

BUILD := build
BIN   := $(BUILD)/bin
LIB   := $(BUILD)/lib
TBIN  := $(BUILD)/tests
OBJ   := $(BUILD)/obj

# Debian packages needed to build, test, bench and demo.  A folder's build.mk
# may add to this list.
DEB_PACKAGES := nginx nginx-dev libbson-dev check libpq-dev libssl-dev \
    libmicrohttpd-dev libcurl4-openssl-dev postgresql pkg-config wrk \
    python3 python3-pytest valgrind curl gcc make libnginx-mod-http-echo

PKG_LIBS = libbson-1.0 libpq openssl libmicrohttpd libcurl
CC      ?= gcc
CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -I.
# Recursive on purpose: evaluated when a recipe runs, after `deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKG_LIBS))
PKG_LDLIBS = $(shell pkg-config --libs $(PKG_LIBS)) -lpthread -lm
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LDLIBS = $(shell pkg-config --libs check)

PYTHON := /usr/bin/python3

# Filled in by the folders' build.mk files.
PROGRAMS   :=
UNIT_TESTS :=
LIBS       :=
# Phony targets a folder adds to `make test` (a bounded fuzz run, say).
# check-deps: the layout's dependency rule (mk/check-deps.sh).
EXTRA_CHECKS := check-deps

# Compile any project C file to build/obj/<path>.o with dependency tracking.
$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

# $(call static_lib,name,sources) -> build/lib/lib<name>.a
define static_lib
$(LIB)/lib$(1).a: $(patsubst %.c,$(OBJ)/%.o,$(2))
	@mkdir -p $(LIB)
	rm -f $$@ && ar rcs $$@ $$^
LIBS += $(LIB)/lib$(1).a
endef

include $(sort $(wildcard */build.mk))

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

.PHONY: check-deps
.PHONY: nginx-tests all deps module module-asan programs programs-sanitized unit extra integration test demo bench clean

all: module programs

deps:
	@mk/deps.sh $(DEB_PACKAGES)

programs: $(PROGRAMS)

# --- the nginx module, built against Debian's nginx-dev -------------------
NGX_BUILD := $(BUILD)/nginx
MODULE_SO := $(BUILD)/ngx_http_cutover_module.so
MODULE_DEPS := $(wildcard ngx_module/*.c ngx_module/*.h common/*.c common/*.h)

module: $(MODULE_SO)

$(NGX_BUILD)/objs/Makefile: config
	rm -rf $(NGX_BUILD) && mkdir -p $(BUILD)
	cp -r /usr/share/nginx/src $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2" \
	    --with-ld-opt="-Wl,-z,relro -Wl,-z,now -fPIC" \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -20 configure.log; exit 1; }

$(MODULE_SO): $(NGX_BUILD)/objs/Makefile $(MODULE_DEPS)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_cutover_module.so $@

# The same module built with AddressSanitizer for the integration tests
# (nginx runs it with libasan preloaded; sanitizer reports land in the
# error log, which fails the case).
ASAN_BUILD := $(BUILD)/nginx-asan
MODULE_ASAN := $(BUILD)/asan/ngx_http_cutover_module.so

module-asan: $(MODULE_ASAN)

$(ASAN_BUILD)/objs/Makefile: config
	rm -rf $(ASAN_BUILD) && mkdir -p $(BUILD)
	cp -r /usr/share/nginx/src $(ASAN_BUILD)
	cd $(ASAN_BUILD) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="-g -O1 -fPIC -fsanitize=address -fno-omit-frame-pointer" \
	    --with-ld-opt="-fPIC -fsanitize=address" \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -20 configure.log; exit 1; }

$(MODULE_ASAN): $(ASAN_BUILD)/objs/Makefile $(MODULE_DEPS)
	$(MAKE) -s -C $(ASAN_BUILD) -f objs/Makefile modules
	@mkdir -p $(dir $@)
	cp $(ASAN_BUILD)/objs/ngx_http_cutover_module.so $@

# --- tests ----------------------------------------------------------------
VALGRIND := valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
    --error-exitcode=1

# The JSON front ends' tests walk tests/fixtures/json, and the JSONTestSuite
# cases too when CUTOVER_JSONTESTSUITE names that suite's folder.
unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do \
	    echo "== $$t (valgrind)"; \
	    CK_FORK=no $(VALGRIND) $$t; \
	done

extra: $(EXTRA_CHECKS)

check-deps:
	@mk/check-deps.sh

# The programs again, built with AddressSanitizer and UndefinedBehavior-
# Sanitizer into build/sanitized, for the integration tests (a report in a
# daemon's log, or a sanitizer exit code of a command, fails the case).
SANITIZED := $(BUILD)/sanitized
programs-sanitized:
	@$(MAKE) --no-print-directory BUILD=$(SANITIZED) \
	    CC="$(CC) -fsanitize=address,undefined -fno-omit-frame-pointer" \
	    programs

# INTEGRATION_TESTS narrows the run to some files; PYTEST_ARGS adds options.
INTEGRATION_TESTS ?= tests/integration
integration: all $(MODULE_ASAN) programs-sanitized
	CUTOVER_MODULE=$(CURDIR)/$(MODULE_ASAN) CUTOVER_BIN=$(CURDIR)/$(SANITIZED)/bin \
	ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(INTEGRATION_TESTS) $(PYTEST_ARGS)

test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory extra
	@$(MAKE) --no-print-directory integration

# nginx's own tests (a checkout of nginx/nginx-tests given as NGINX_TESTS),
# plain and with the module routing and recording every request: the
# verdicts must be the same.
nginx-tests: all
	@test -n "$(NGINX_TESTS)" || { echo "usage: make nginx-tests NGINX_TESTS=/path/to/nginx-tests" >&2; exit 2; }
	$(PYTHON) tests/nginx-tests/run.py $(NGINX_TESTS) $(NGINX_TESTS_ONLY)

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(PYTHON) demo/run.py
	@$(PYTHON) demo/fleet.py

bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(PYTHON) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)
