# shadow/: the dual-run log (writer side compiled by nginx too), its reader,
# cutover-shadowd and cutover-logtool.

SHADOW_SRCS := $(filter-out shadow/main.c shadow/logtool_main.c,\
    $(wildcard shadow/shadow_*.c))
$(eval $(call static_lib,shadow,$(SHADOW_SRCS)))

# The files nginx workers compile: no nginx header, no libbson, no
# allocation.  Checked here with nginx's own warning flags.
SHADOW_NGX_SRCS := shadow/shadow_frame.c shadow/shadow_record.c \
    shadow/shadow_segment.c
SHADOW_NGX_FLAGS := -c -O2 -W -Wall -Wpointer-arith -Wno-unused-parameter \
    -Werror -I.

PROGRAMS += $(BIN)/cutover-logtool
$(BIN)/cutover-logtool: $(OBJ)/shadow/logtool_main.o $(LIB)/libshadow.a \
    $(LIB)/libcompare.a $(LIB)/libcutover.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

PROGRAMS += $(BIN)/cutover-shadowd
$(BIN)/cutover-shadowd: $(OBJ)/shadow/main.o $(LIB)/libshadow.a \
    $(LIB)/libcompare.a $(LIB)/libcutover.a $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

UNIT_TESTS += $(TBIN)/check_shadow
$(TBIN)/check_shadow: $(OBJ)/tests/unit/check_shadow.o $(LIB)/libshadow.a \
    $(LIB)/libcompare.a $(LIB)/libcutover.a $(LIB)/libcommon.a \
    $(OBJ)/shadow/ngx_flags.stamp
	@mkdir -p $(TBIN)
	$(CC) -o $@ $(filter-out %.stamp,$^) $(PKG_LDLIBS) $(CHECK_LDLIBS)

$(OBJ)/shadow/ngx_flags.stamp: $(SHADOW_NGX_SRCS) shadow/shadow_log.h
	@mkdir -p $(dir $@)
	@for f in $(SHADOW_NGX_SRCS); do \
	    $(CC) $(SHADOW_NGX_FLAGS) $$f -o /dev/null || exit 1; done
	@touch $@
