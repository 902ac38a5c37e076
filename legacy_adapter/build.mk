# legacy_adapter: the canonical <-> legacy mapping library, the stand-in
# legacy store system, the adapter and the store-system migration.

LEGACY_SRCS := $(wildcard legacy_adapter/legacy_*.c)
$(eval $(call static_lib,legacy,$(LEGACY_SRCS)))

PROGRAMS += $(BIN)/legacy-store-sim $(BIN)/cutover-legacy-adapter

$(BIN)/legacy-store-sim: $(OBJ)/legacy_adapter/main_sim.o $(LIB)/liblegacy.a \
    $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

$(BIN)/cutover-legacy-adapter: $(OBJ)/legacy_adapter/main_adapter.o \
    $(LIB)/liblegacy.a $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)

UNIT_TESTS += $(TBIN)/check_legacy
$(TBIN)/check_legacy: $(OBJ)/tests/unit/check_legacy.o $(LIB)/liblegacy.a \
    $(LIB)/libcommon.a
	@mkdir -p $(TBIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS) $(CHECK_LDLIBS)

# schema.sql is compiled in (.incbin); rebuild when it changes.
$(OBJ)/legacy_adapter/legacy_schema.o: legacy_adapter/schema.sql
