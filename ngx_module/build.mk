# ngx_module/: the plain-C core of the module (no nginx headers) is also a
# static library, used by cutoverctl and the unit tests.

CUTOVER_CORE_SRCS := ngx_module/cutover_dial.c ngx_module/cutover_state.c \
    ngx_module/cutover_auth.c
$(eval $(call static_lib,cutover,$(CUTOVER_CORE_SRCS)))

UNIT_TESTS += $(TBIN)/check_cutover
$(TBIN)/check_cutover: $(OBJ)/tests/unit/check_cutover.o $(LIB)/libcutover.a \
    $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)
