#!/usr/bin/env bash
# The dependency rule of the layout (README "Layout"): every part may use
# common/; common/ uses nothing else of ours; compare/, shadow/,
# legacy_adapter/ and new_core/ never include ngx_module/; new_core/ and
# legacy_adapter/ never include each other.  Prints file:line of each
# include that breaks it and exits 1; run from the repository root.
set -euo pipefail


# forbidden <folder> -> the folders its files must not include from
forbidden() {
    case "$1" in
    common)         echo "ngx_module shadow compare legacy_adapter new_core cli tests bench demo" ;;
    compare)        echo "ngx_module cli" ;;
    shadow)         echo "ngx_module cli" ;;
    legacy_adapter) echo "ngx_module new_core shadow compare cli" ;;
    new_core)       echo "ngx_module legacy_adapter shadow compare cli" ;;
    esac
}

bad=0
for dir in common compare shadow legacy_adapter new_core; do
    deny=$(forbidden "$dir")
    while IFS= read -r hit; do
        [ -n "$hit" ] || continue
        file=${hit%%:*}
        rest=${hit#*:}
        line=${rest%%:*}
        inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${rest#*:}")
        top=${inc%%/*}
        [ "$top" != "$inc" ] || continue        # same folder: fine
        for d in $deny; do
            if [ "$top" = "$d" ]; then
                echo "$file:$line: $dir/ must not include $inc ($d/ is off limits to $dir/)" >&2
                bad=1
            fi
        done
    done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' \
                 "$dir"/*.c "$dir"/*.h 2>/dev/null || true)
done

[ "$bad" -eq 0 ] || exit 1
echo "check-deps: ok"
