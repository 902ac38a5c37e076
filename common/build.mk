# common/: the plain-C library every part links (JSON, hashing, errors, log
# line, embedded files, the HTTP listener, the canonical API's input rules,
# the expiry purge).  No nginx header; the module compiles some of it.

COMMON_SRCS := common/cutover_json.c common/cutover_error.c \
    common/cutover_hash.c common/cutover_frame.c common/cutover_record.c \
    common/cutover_segment.c common/cutover_log.c common/cutover_httpd.c \
    common/cutover_guard.c common/cutover_sign.c common/cutover_admin_call.c \
    common/cutover_duration.c \
    common/cutover_api.c common/cutover_purge.c
$(eval $(call static_lib,common,$(COMMON_SRCS)))

# The files nginx workers compile (config): no nginx header, no libbson,
# no allocation.  Checked here with nginx's own warning flags.
COMMON_NGX_SRCS := common/cutover_json.c common/cutover_error.c \
    common/cutover_hash.c common/cutover_frame.c common/cutover_record.c \
    common/cutover_segment.c common/cutover_guard.c common/cutover_sign.c \
    common/cutover_duration.c
COMMON_NGX_FLAGS := -c -O2 -W -Wall -Wpointer-arith -Wno-unused-parameter \
    -Werror -I.

UNIT_TESTS += $(TBIN)/check_common
$(TBIN)/check_common: $(OBJ)/tests/unit/check_common.o $(LIB)/libcommon.a \
    $(OBJ)/common/ngx_flags.stamp
	@mkdir -p $(TBIN)
	$(CC) -o $@ $(filter-out %.stamp,$^) $(PKG_LDLIBS) $(CHECK_LDLIBS)

$(OBJ)/common/ngx_flags.stamp: $(COMMON_NGX_SRCS) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	@for f in $(COMMON_NGX_SRCS); do \
	    $(CC) $(COMMON_NGX_FLAGS) $$f -o /dev/null || exit 1; done
	@touch $@
