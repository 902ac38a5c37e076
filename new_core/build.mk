# new_core/: the new ERP core (library, cutover-newcore, unit tests).

NEWCORE_SRCS := $(filter-out new_core/main.c,$(wildcard new_core/newcore_*.c))
$(eval $(call static_lib,newcore,$(NEWCORE_SRCS)))

# schema.sql is compiled in (.incbin); rebuild when it changes.
$(OBJ)/new_core/newcore_schema.o: new_core/schema.sql

PROGRAMS += $(BIN)/cutover-newcore
$(BIN)/cutover-newcore: $(OBJ)/new_core/main.o $(LIB)/libnewcore.a \
    $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

UNIT_TESTS += $(TBIN)/check_newcore
$(TBIN)/check_newcore: $(OBJ)/tests/unit/check_newcore.o $(LIB)/libnewcore.a \
    $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)
