# common/: small pieces every daemon shares (log line, embedded files).

$(eval $(call static_lib,common,common/cutover_log.c))
