#!/bin/sh
# libcaption as a user gets it: `meson install` into a staging folder
# (--destdir), then the README's example (tests/data/libcaption-example.c)
# compiled with the compiler and `pkg-config --cflags --libs caption` against
# that folder alone, linked once with the shared library and once with the
# static one, and run on an example image: its caption must be
# `caption --beam 3 IMAGE`'s. Also: the shared library exports caption.h's
# functions and nothing else (libcaption.map).
#
# Usage: test_library.sh MESON BUILD_DIR CAPTION SOURCE_DIR SANITIZE CC...
#   SANITIZE: the build's b_sanitize value ("none" or e.g. "address,undefined"):
#   an instrumented library needs the example linked with the same runtime.
# Exit 77 (skipped) without pkg-config or the compiler.
set -eu
meson=$1 build=$2 caption=$3 source=$4 sanitize=$5
shift 5
# meson points LD_LIBRARY_PATH at the build tree's libcaption.so (this test
# depends on it), which would be loaded before the installed one.
unset LD_LIBRARY_PATH
command -v pkg-config >/dev/null 2>&1 || { echo "pkg-config is missing: skipped"; exit 77; }
command -v "$1" >/dev/null 2>&1 || { echo "no C compiler ($1): skipped"; exit 77; }
sanitize_flags=
[ "$sanitize" = none ] || sanitize_flags="-fsanitize=$sanitize"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
stage=$tmp/stage
# --no-rebuild: `meson test` has built everything already, and a ninja run
# from inside a test would race with nothing good.
"$meson" install -C "$build" --no-rebuild --destdir "$stage" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; echo "meson install failed"; exit 1; }

pc=$(find "$stage" -name caption.pc | head -n 1)
[ -n "$pc" ] || { echo "meson install put no caption.pc under $stage"; exit 1; }
prefix=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=prefix caption)
# The .pc file names the configured prefix; the files are under $stage.
# --define-variable relocates caption.pc's prefix (pkgconf's --define-prefix
# and PKG_CONFIG_SYSROOT_DIR would also rewrite openblas's and cJSON's
# absolute paths, and --define-prefix does not know Debian's multiarch libdir).
flags() {
  PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$stage$prefix" "$@" caption
}
libdir=$(flags --variable=libdir)
# The default is an ensemble: its list and both its models are installed.
for file in default-ensemble.txt deep-transformer-model.safetensors second-transformer-model.safetensors \
            lstm-model.safetensors transformer-model.safetensors; do
  [ -f "$stage$prefix/share/caption/$file" ] || { echo "the bundled $file was not installed to $stage$prefix/share/caption"; exit 1; }
done
# The examples below open one model file (the LSTM, the fastest) through $CAPTION_MODEL.
model=$stage$prefix/share/caption/lstm-model.safetensors
case "$(flags --cflags --libs --static)" in
  *"$build"*) echo "pkg-config points into the build tree: $(flags --cflags --libs --static)"; exit 1 ;;
esac

image=$source/assets/examples/chelsea.png
example=$source/tests/data/libcaption-example.c
# The same model file for both, so that a concurrent change to assets/ cannot make them differ.
expected=$(CAPTION_MODEL=$model "$caption" --beam 3 "$image" | cut -f 2-)
[ -n "$expected" ] || { echo "caption --beam 3 $image printed no caption"; exit 1; }
status=0

# check NAME OUTPUT: the first line is the caption, then one line per word.
check() {
  first=$(printf '%s\n' "$2" | head -n 1)
  words=$(printf '%s\n' "$2" | tail -n +2 | grep -c ' row [0-9]*, column [0-9]* of ' || true)
  if [ "$first" != "$expected" ]; then
    echo "$1: the example says '$first', caption --beam 3 says '$expected'"
    status=1
  elif [ "$words" -ne "$(echo "$expected" | wc -w)" ]; then
    echo "$1: $words attention lines for the $(echo "$expected" | wc -w) words of '$expected':"
    printf '%s\n' "$2"
    status=1
  else
    echo "$1: ok: $first"
  fi
}

# The example must build warning-free in strict C11 from the installed header alone.
strict="-std=c11 -pedantic -Wall -Wextra -Werror $sanitize_flags"

# Shared: found at run time through the rpath; the model through
# $CAPTION_MODEL, as caption.h documents for a staged install.
# shellcheck disable=SC2046 # the flags are words
"$@" $strict -o "$tmp/example-shared" "$example" $(flags --cflags --libs) -Wl,-rpath,"$libdir"
if command -v readelf >/dev/null 2>&1 && ! readelf -d "$tmp/example-shared" | grep -q 'NEEDED.*libcaption\.so'; then
  echo "shared: the example does not link libcaption.so"; status=1
fi
if command -v ldd >/dev/null 2>&1; then
  case "$(ldd "$tmp/example-shared" | grep libcaption)" in
    *"$libdir"/libcaption.so*) ;;
    *) echo "shared: the example would load $(ldd "$tmp/example-shared" | grep libcaption), not $libdir's"; status=1 ;;
  esac
fi
output=$(CAPTION_MODEL=$model "$tmp/example-shared" "$image")
check shared "$output"
printf '%s\n' "$output"

# Static: libcaption.a by name (-l:), since with both installed -lcaption
# picks the .so; pkg-config --static adds what it needs (openblas, cJSON,
# stb, threads, libm). The model path is passed explicitly this time.
# shellcheck disable=SC2046
"$@" $strict -o "$tmp/example-static" "$example" \
  $(printf ' %s ' "$(flags --cflags --libs --static)" | sed 's/ -lcaption / -l:libcaption.a /')
if command -v readelf >/dev/null 2>&1 && readelf -d "$tmp/example-static" | grep -q 'NEEDED.*libcaption'; then
  echo "static: the example still needs a libcaption shared object"; status=1
fi
check static "$(env -u CAPTION_MODEL "$tmp/example-static" "$image" "$model")"

# The exported symbols are exactly the functions caption.h declares.
so=$(find "$libdir" -name 'libcaption.so.*.*' | head -n 1)
header=$(find "$stage" -name caption.h | head -n 1)
if command -v nm >/dev/null 2>&1 && [ -n "$so" ]; then
  nm -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort >"$tmp/exported"
  sed -n 's/^[a-z][a-z_ ]*[ *]\(caption_[a-z_]*\)(.*/\1/p' "$header" | sort >"$tmp/declared"
  if ! cmp -s "$tmp/exported" "$tmp/declared"; then
    echo "libcaption.so's exports differ from caption.h's functions (< exported, > declared):"
    diff "$tmp/exported" "$tmp/declared" || true
    status=1
  else
    echo "exports: ok: $(wc -l <"$tmp/exported") functions, as caption.h declares"
  fi
fi
exit $status
