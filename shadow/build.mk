# shadow/: the dual-run log's reader (the format and its writer are in
# common/), cutover-shadowd and cutover-logtool.

SHADOW_SRCS := $(filter-out shadow/main.c shadow/logtool_main.c,\
    $(wildcard shadow/shadow_*.c))
$(eval $(call static_lib,shadow,$(SHADOW_SRCS)))

PROGRAMS += $(BIN)/cutover-logtool
$(BIN)/cutover-logtool: $(OBJ)/shadow/logtool_main.o $(LIB)/libshadow.a \
    $(LIB)/libcompare.a $(LIB)/libcutover.a $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

PROGRAMS += $(BIN)/cutover-shadowd
$(BIN)/cutover-shadowd: $(OBJ)/shadow/main.o $(LIB)/libshadow.a \
    $(LIB)/libcompare.a $(LIB)/libcutover.a $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

UNIT_TESTS += $(TBIN)/check_shadow
$(TBIN)/check_shadow: $(OBJ)/tests/unit/check_shadow.o $(LIB)/libshadow.a \
    $(LIB)/libcompare.a $(LIB)/libcutover.a $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)
