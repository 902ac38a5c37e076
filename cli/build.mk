# cli/: cutoverctl, the command-line face of the admin API.

PROGRAMS += $(BIN)/cutoverctl
$(BIN)/cutoverctl: $(OBJ)/cli/cutoverctl.o $(LIB)/libcutover.a \
    $(LIB)/libcommon.a
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(PKG_LDLIBS)
