# common/: small pieces every daemon shares (log line, embedded files, the
# HTTP listener, the canonical API's input rules, the expiry purge).

COMMON_SRCS := common/cutover_log.c common/cutover_httpd.c \
    common/cutover_api.c common/cutover_purge.c
$(eval $(call static_lib,common,$(COMMON_SRCS)))

UNIT_TESTS += $(TBIN)/check_common
$(TBIN)/check_common: $(OBJ)/tests/unit/check_common.o $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)
