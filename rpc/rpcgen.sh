#!/bin/sh
# rpcgen.sh SPEC.x OUT.h OUT_xdr.c — run rpcgen so that the generated .c includes
# "SPEC.h" by its bare name (rpcgen copies the input path into the #include).
set -eu
spec=$(realpath "$1"); out_h=$(realpath -m "$2"); out_c=$(realpath -m "$3")
dir=$(dirname "$out_h"); base=$(basename "$spec")
cd "$dir"
cp "$spec" "./$base"
# rpcgen refuses to overwrite its outputs, so a changed spec needs the old ones gone.
rm -f "$out_h" "$out_c"
rpcgen -h -o "$out_h" "$base"
rpcgen -c -o "$out_c" "$base"
rm -f "./$base"
