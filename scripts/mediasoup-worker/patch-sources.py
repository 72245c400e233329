#!/usr/bin/env python3
"""Adapt a copy of mediasoup 3.27.1's worker/ to build against Debian 12 packages.

Usage: patch-sources.py <worker-copy-dir>

Every edit must match exactly once; if mediasoup's sources drift, this fails
instead of producing a half-patched tree. See README.md for the reasons.
"""
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent


def edit(path, old, new, count=1):
    text = path.read_text()
    found = text.count(old)
    if found != count:
        sys.exit(f"patch-sources: expected {count} match(es) in {path}, found {found}:\n{old}")
    path.write_text(text.replace(old, new))


def cut(path, start, end, new):
    """Replace the text from `start` (inclusive) up to `end` (exclusive)."""
    text = path.read_text()
    i = text.find(start)
    j = text.find(end, i + 1)
    if i < 0 or j < 0 or text.count(start) != 1:
        sys.exit(f"patch-sources: cannot find block {start!r} .. {end!r} in {path}")
    path.write_text(text[:i] + new + text[j:])


SYSTEM_DEPS = """\
# [debian] System libraries instead of meson subprojects (see
# scripts/mediasoup-worker/README.md). compat/ holds the libsrtp 3 API shim
# and the ankerl::unordered_dense stand-in.
libuv_dep = dependency('libuv', version: '>= 1.44')
openssl_dep = dependency('openssl', version: '>= 3.0')
libsrtp_dep = declare_dependency(
  dependencies: dependency('libsrtp2', version: '>= 2.4'),
  include_directories: include_directories('compat/libsrtp2'),
)
ankerl_unordered_dense_dep = declare_dependency(
  include_directories: include_directories('compat/unordered_dense'),
)
flatbuffers_dep = dependency('flatbuffers')

# flatbuffers schemas subdirectory.
subdir('fbs')

dependencies = [
  libuv_dep,
  openssl_dep,
  libsrtp_dep,
  ankerl_unordered_dense_dep,
  flatbuffers_dep,
  flatbuffers_generator_dep,
]

link_whole = []

if not get_option('ms_use_builtin_bwe')
  # deps/libwebrtc needs abseil (strings, optional); the worker itself does not.
  absl_strings_dep = dependency('absl_strings')
  absl_optional_dep = dependency('absl_optional')

  # Add current build directory so libwebrtc has access to FBS folder.
  libwebrtc_include_directories = include_directories('include', 'fbs')

  subdir('deps/libwebrtc')

  dependencies += [
    libwebrtc_dep,
  ]
  link_whole += [
    libwebrtc,
  ]
endif

"""


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    worker = pathlib.Path(sys.argv[1])

    # 1. Top-level meson.build.
    meson = worker / "meson.build"
    # Debian 12 ships meson 1.0.1, which handles this file fine.
    edit(meson, "meson_version: '>= 1.1.0'", "meson_version: '>= 1.0.0'")
    cut(meson, "libuv_proj = subproject(", "if host_machine.system() == 'windows'\n  wingetopt_proj", SYSTEM_DEPS)

    # 2. deps/libwebrtc/meson.build uses the same subprojects.
    webrtc = worker / "deps/libwebrtc/meson.build"
    cut(webrtc, "abseil_cpp_proj = subproject(", "local_include_directories =", "")
    edit(webrtc, "libuv_proj.get_variable('libuv_dep')", "libuv_dep")
    edit(webrtc, "openssl_proj.get_variable('openssl_dep')", "openssl_dep")
    edit(webrtc, "flatbuffers_proj.get_variable('flatbuffers_dep')", "flatbuffers_dep")
    edit(webrtc, "abseil_cpp_proj.get_variable('absl_strings_dep')", "absl_strings_dep", count=2)
    edit(webrtc, "abseil_cpp_proj.get_variable('absl_types_dep')", "absl_optional_dep", count=2)

    # 3. Only the policy handle's type name clashes with libsrtp 2
    #    (everything else is bridged by compat/libsrtp2/srtp.h).
    edit(worker / "src/RTC/SrtpSession.cpp",
         "srtp_policy_t policy{ nullptr };",
         "ms_srtp3_policy_t policy{ nullptr }; // [debian] libsrtp 3 API shim")

    # 4. BIO callback: BIO_CB_RETURN is a flag, not a value. With the equality
    #    test every BIO_ctrl() gets 1, which Debian's kTLS-enabled OpenSSL reads
    #    as "kTLS send on" -> no write buffer -> SIGSEGV in SSL_read.
    edit(worker / "src/RTC/DtlsTransport.cpp",
         "(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1;",
         "(operationType & BIO_CB_RETURN) ? static_cast<long>(ret) : 1;")

    # 5. Shim headers; drop the wraps so nothing can fall back to a subproject.
    shutil.copytree(HERE / "compat", worker / "compat")
    shutil.rmtree(worker / "subprojects", ignore_errors=True)

    print("patch-sources: worker sources adapted for Debian system libraries")


if __name__ == "__main__":
    main()
