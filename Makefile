# qemu-vfio-audio: build the fork from the pinned upstream QEMU source.
#
#   make            install the build dependencies (first run, as root),
#                   fetch and prepare upstream, build build/qemu-system-x86_64
#                   on the base that fits this host (say which)
#   make UPSTREAM=10.0  the same on QEMU 10.0: build-10.0/qemu-system-x86_64
#                   (UPSTREAM= goes with every target below; 7.2 or 10.0)
#   make check      build and run every test (see buildsys/run-checks)
#   make check-sanitizers  the fork's tests against an ASan/UBSan build
#                   (build/qemu-san); fails on any sanitizer report
#   make fuzz       fuzz AC97's and HDA's code, ours and upstream's, under
#                   ASan/UBSan (clang, libFuzzer; build/qemu-fuzz) from the
#                   seeds in tests/fuzz/corpus (FUZZ_ARGS: --seconds N,
#                   --runs N, --merge, targets; see buildsys/fuzz)
#   make reconfigure  re-run ./configure with the options it was last given
#   make install    install under PREFIX (/usr/local), into DESTDIR if set
#   make uninstall  remove exactly what make install installed there
#   make deb        build/qemu-system-x86-vfio-audio_*.deb, a drop-in for
#                   Debian's qemu-system-x86_64 (buildsys/make-deb)
#   make check-deb-chroot  that .deb built, installed over Debian's binary,
#                   driven by libvirt and removed again in a chroot of the
#                   Debian release of the base (7.2: bookworm, 10.0: trixie;
#                   debootstrap, buildsys/check-deb-chroot; ~40 min cold)
#   make demo       boot a tiny Debian guest on the fork that plays a chime
#                   to your sound server (bench/guest)
#   make bench      the latency benchmark against Debian's stock binary
#   make soak       the bench guest plays while the sound server is ended
#                   and restarted 20 times (SOAK_ARGS: --restarts N ...)
#   make check-upstream-tree  patches/BASE/ on upstream 7.2.22 or 10.0.13
#                   without Debian's own patches: applies, builds, runs
#                   (CI runs it for both)
#   make gentoo-check  the Gentoo overlay (the base's ebuild), as far as it
#                   can be checked here
#   make clean      drop the objects, keep the prepared tree and download
#   make distclean  drop build/ entirely

# The upstream base (upstream-version): 7.2 or 10.0.  Unset, the one that
# fits this host (buildsys/base pick); each base builds in a tree of its own.
ifeq ($(origin UPSTREAM),undefined)
UPSTREAM := $(shell buildsys/base pick 2>/dev/null)
$(info make: upstream base $(UPSTREAM): $(shell buildsys/base pick 2>&1 \
	>/dev/null); UPSTREAM=7.2 or 10.0 chooses)
else ifneq ($(shell buildsys/base check '$(UPSTREAM)' 2>&1),)
$(error $(shell buildsys/base check '$(UPSTREAM)' 2>&1))
endif
export UPSTREAM

ifeq ($(UPSTREAM),7.2)
BUILD ?= build
else
BUILD ?= build-$(UPSTREAM)
endif
QEMU_BUILD := $(BUILD)/qemu
NINJA ?= ninja
PREFIX ?= /usr/local
DESTDIR ?=

# ccache hits across clones: paths below the checkout are made relative.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true

.PHONY: all setup reconfigure prepare check install uninstall deb \
	check-deb-chroot demo \
	bench soak fuzz check-sanitizers check-upstream-tree gentoo-check clean \
	distclean

all: prepare
	$(NINJA) -C $(QEMU_BUILD) qemu-system-x86_64
	@$(BUILD)/qemu-system-x86_64 --version | head -n 1

# Packages come from Debian; once per build tree (again after distclean).
$(BUILD)/.setup-done: buildsys/setup-debian
	@if [ "$$(id -u)" = 0 ]; then buildsys/setup-debian; \
	 else sudo buildsys/setup-debian; fi
	@mkdir -p $(BUILD) && touch $@

setup:
	@rm -f $(BUILD)/.setup-done
	@$(MAKE) --no-print-directory $(BUILD)/.setup-done

# Re-run configure, with the options it was given, when its inputs change.
$(BUILD)/config.status: $(BUILD)/.setup-done configure upstream-version \
		buildsys/fetch-upstream buildsys/link-firmware
	@if [ -x $@ ]; then $@; \
	 else ./configure --upstream=$(UPSTREAM) --builddir=$(BUILD); fi

reconfigure: $(BUILD)/.setup-done
	@if [ -x $(BUILD)/config.status ]; then $(BUILD)/config.status; \
	 else ./configure --upstream=$(UPSTREAM) --builddir=$(BUILD); fi

# Cheap when nothing changed: patches and our files are synced into the
# tree only where they differ, so ninja rebuilds only what they touch.
prepare: $(BUILD)/config.status
	@buildsys/prepare-tree --upstream=$(UPSTREAM) $(BUILD)/src

check: all
	buildsys/run-checks $(BUILD)

check-sanitizers: prepare
	buildsys/check-sanitizers $(BUILD)

fuzz: prepare
	buildsys/fuzz $(BUILD) $(FUZZ_ARGS)

install: all
	buildsys/install install $(BUILD) "$(PREFIX)" "$(DESTDIR)"

uninstall:
	buildsys/install uninstall $(BUILD) "$(PREFIX)" "$(DESTDIR)"

deb: all
	buildsys/make-deb $(BUILD) $(BUILD)/deb

check-deb-chroot:
	buildsys/check-deb-chroot $(UPSTREAM)

# The guest is built from Debian packages (kernel, busybox, alsa-utils).
demo: all
	bench/guest/build-guest.sh $(BUILD)/guest
	bench/guest/run-guest.sh $(BUILD)/qemu-system-x86_64 $(BUILD)/guest \
		-audiodev pa,id=snd0

bench: all
	bench/run-bench.py $(BENCH_ARGS)

soak: all
	QEMU_BINARY=$(abspath $(BUILD))/qemu-system-x86_64 \
		tests/integration/soak_restarts.py $(SOAK_ARGS)

check-upstream-tree: $(BUILD)/config.status
	buildsys/check-upstream-tree --test --upstream=$(UPSTREAM) $(BUILD)

# GENTOO_CHECK_ARGS=--build adds a full build and install (~6 min cold).
gentoo-check: $(BUILD)/config.status
	gentoo/check-ebuild $(GENTOO_CHECK_ARGS) --upstream=$(UPSTREAM) $(BUILD)

clean:
	@if [ -d $(QEMU_BUILD) ]; then $(NINJA) -C $(QEMU_BUILD) clean; fi

distclean:
	rm -rf $(BUILD)
