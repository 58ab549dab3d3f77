# Copyright 2026 qemu-vfio-audio developers
# Distributed under the terms of the GNU General Public License v2

EAPI=8

# qemu-vfio-audio: upstream QEMU 7.2.22 (download.qemu.org), the fork's
# patch queue (patches/7.2/ of the fork, in its series order) and the fork's own
# files copied over the tree, exactly as the fork's buildsys/prepare-tree
# does on Debian.  Only qemu-system-x86_64 is built; it is installed in a
# prefix of its own so it sits beside app-emulation/qemu (which libvirt
# depends on) instead of replacing it.  Modelled on app-emulation/qemu.

PYTHON_COMPAT=( python3_{10..13} )

inherit linux-info python-any-r1 toolchain-funcs

# The upstream release this fork version is built on: 7.2.22 for 7.2.22,
# and also for a later fork release on the same upstream, 7.2.22_p1 ...
QEMU_PV=${PV%%_p*}
# The fork's sources: a GitHub-style archive of the fork's repository at
# the tag v${PV} (its top directory is ${PN}-${PV}: GitHub drops the "v").
# The repository address is the one thing to adjust when the fork is
# published somewhere else; see gentoo/README.md.
FORK_REPO="https://github.com/qemu-vfio-audio/qemu-vfio-audio"

DESCRIPTION="QEMU ${QEMU_PV} for VFIO gaming VMs: low-latency PulseAudio, paced AC97"
HOMEPAGE="
	${FORK_REPO}
	https://www.qemu.org
"
SRC_URI="
	https://download.qemu.org/qemu-${QEMU_PV}.tar.xz
	${FORK_REPO}/archive/refs/tags/v${PV}.tar.gz -> ${P}-fork.tar.gz
"
S="${WORKDIR}/qemu-${QEMU_PV}"
FORK_S="${WORKDIR}/${PN}-${PV}"

LICENSE="GPL-2 LGPL-2 BSD-2"
SLOT="0"
KEYWORDS="~amd64"

# The USE flags of the 2019 app-emulation/qemu build this replaces, where
# QEMU 7.2 still has a configure switch for them, each mapped to exactly
# one switch in src_configure (see QVA_USE_SWITCHES), plus jack and test,
# plus pipewire: the fork's pa plays straight to the PipeWire daemon behind
# pipewire-pulse when built with libpipewire (--enable-pipewire, which
# patches/7.2/0019 gives 7.2; without it libpipewire was automagic here).
# Defaults (+) give what the fork's Debian build has: its configure's
# fork_defaults, plus what that leaves to auto-detection and finds there
# (bzip2, jpeg, ncurses, opengl, png); not curl, gtk, iscsi, jack, sdl.
# From that 2019 set, two have no configure switch in 7.2:
#  - filecaps: in app-emulation/qemu an install-time flag (fcaps.eclass
#    gives qemu-bridge-helper cap_net_admin in pkg_postinst).  This package
#    builds no helpers (--disable-tools, a fork default), so the flag is not
#    in IUSE here; -netdev bridge runs app-emulation/qemu's
#    /usr/libexec/qemu-bridge-helper (--libexecdir below), which gets its
#    capability from app-emulation/qemu[filecaps].
#  - test: no switch; it is RESTRICT="!test? ( test )" and src_test.
IUSE="
	+aio +alsa +bzip2 +caps curl +fdt gtk iscsi jack +jpeg +ncurses nls
	+opengl +pipewire +png +pulseaudio sdl +seccomp test +usb +vhost-net +vnc
	+xattr
"
# QEMU_SOFTMMU_TARGETS: the fork is x86_64 only (its qtests, its irqchip
# policy for q35).  Kept as the USE_EXPAND that app-emulation/qemu uses so
# make.conf's QEMU_SOFTMMU_TARGETS="x86_64" applies here too.
IUSE_SOFTMMU_TARGETS="x86_64"
IUSE+=" $(printf ' +qemu_softmmu_targets_%s' ${IUSE_SOFTMMU_TARGETS})"

RESTRICT="!test? ( test )"
REQUIRED_USE="
	qemu_softmmu_targets_x86_64
	qemu_softmmu_targets_x86_64? ( fdt )
"

# USE flag -> QEMU 7.2 configure switch, one to one: "flag:switch" gives
# --enable-switch / --disable-switch (fdt: --enable-fdt=system, the fork's
# default: the system libfdt, not the bundled dtc/).  gentoo/check-ebuild
# checks src_configure against this table and the table against 7.2's
# configure.
QVA_USE_SWITCHES=(
	aio:linux-aio
	alsa:alsa
	bzip2:bzip2
	caps:cap-ng
	curl:curl
	fdt:fdt
	gtk:gtk
	iscsi:libiscsi
	jack:jack
	jpeg:vnc-jpeg
	ncurses:curses
	nls:gettext
	opengl:opengl
	pipewire:pipewire
	png:png
	pulseaudio:pa
	sdl:sdl
	seccomp:seccomp
	usb:libusb
	vhost-net:vhost-net
	vnc:vnc
	xattr:attr
)

COMMON_DEPEND="
	dev-libs/glib:2
	net-libs/libslirp
	sys-libs/liburing:=
	sys-libs/zlib
	sys-process/numactl
	x11-libs/pixman
	app-arch/zstd:=
	net-libs/gnutls:=
	aio? ( dev-libs/libaio )
	alsa? ( >=media-libs/alsa-lib-1.0.13 )
	bzip2? ( app-arch/bzip2 )
	caps? ( sys-libs/libcap-ng )
	curl? ( >=net-misc/curl-7.15.4 )
	fdt? ( >=sys-apps/dtc-1.5.1 )
	gtk? ( x11-libs/gtk+:3 )
	iscsi? ( net-libs/libiscsi )
	jack? ( virtual/jack )
	jpeg? ( media-libs/libjpeg-turbo:= )
	ncurses? ( sys-libs/ncurses:=[unicode(+)] )
	opengl? (
		media-libs/libepoxy
		media-libs/mesa[egl(+),gbm(+)]
		virtual/opengl
	)
	png? ( media-libs/libpng:0= )
	pipewire? ( >=media-video/pipewire-0.3.64 )
	pulseaudio? ( media-libs/libpulse )
	sdl? ( media-libs/libsdl2[video] )
	seccomp? ( >=sys-libs/libseccomp-2.1.0 )
	usb? ( virtual/libusb:1 )
	xattr? ( sys-apps/attr )
"
# Firmware comes from Gentoo's packages, as Debian's seabios, ipxe-qemu
# and ovmf supply it to the fork there: SeaBIOS and SeaVGABIOS through
# --firmwarepath, iPXE through the pxe-*.rom links of src_install, OVMF
# through the JSON descriptors edk2-ovmf installs in /usr/share/qemu/firmware
# (what libvirt reads for <os firmware='efi'>).
X86_FIRMWARE_RDEPEND="
	|| (
		sys-firmware/seabios[seavgabios]
		sys-firmware/seabios-bin
	)
	sys-firmware/ipxe[qemu]
	|| (
		sys-firmware/edk2-ovmf
		sys-firmware/edk2-ovmf-bin
	)
"
DEPEND="
	${COMMON_DEPEND}
	sys-kernel/linux-headers
"
RDEPEND="
	${COMMON_DEPEND}
	acct-group/kvm
	qemu_softmmu_targets_x86_64? ( ${X86_FIRMWARE_RDEPEND} )
"
BDEPEND="
	${PYTHON_DEPS}
	>=dev-build/meson-0.61.3
	dev-lang/perl
	virtual/pkgconfig
	nls? ( sys-devel/gettext )
	test? (
		dev-libs/glib[utils]
		sys-devel/bc
	)
"

# The fork's patch queue, in the order of its patches/7.2/series (checked by
# gentoo/check-ebuild).  Applied by the default src_prepare (eapply -p1).
PATCHES=(
	"${FORK_S}"/patches/7.2/0001-build-hook-fork-meson.patch
	"${FORK_S}"/patches/7.2/0002-version-names-the-fork.patch
	"${FORK_S}"/patches/7.2/0003-kvm-irqchip-policy-for-vfio.patch
	"${FORK_S}"/patches/7.2/0004-audio-driver-defaults.patch
	"${FORK_S}"/patches/7.2/0005-audio-no-abort-when-default-driver-fails.patch
	"${FORK_S}"/patches/7.2/0006-qapi-audio-pa-latency-options.patch
	"${FORK_S}"/patches/7.2/0007-audio-trace-events-for-pa.patch
	"${FORK_S}"/patches/7.2/0008-soundhw-option-is-back.patch
	"${FORK_S}"/patches/7.2/0009-qmp-hmp-audio-stream-stats.patch
	"${FORK_S}"/patches/7.2/0010-ac97-pace-dma-by-sample-clock.patch
	"${FORK_S}"/patches/7.2/0011-audio-backends-may-ask-to-be-kept-full.patch
	"${FORK_S}"/patches/7.2/0012-audio-drivers-check-their-options-when-parsed.patch
	"${FORK_S}"/patches/7.2/0013-audio-legacy-variables-named-in-errors.patch
	"${FORK_S}"/patches/7.2/0014-hda-codec-pace-dma-by-sample-clock.patch
	"${FORK_S}"/patches/7.2/0015-fuzz-instrument-the-audio-layer.patch
	"${FORK_S}"/patches/7.2/0016-audio-a-backend-the-fuzzer-controls.patch
	"${FORK_S}"/patches/7.2/0017-qtest-a-clock-that-stalls.patch
	"${FORK_S}"/patches/7.2/0019-build-a-pipewire-option-for-the-pa-backend.patch
	"${FORK_S}"/patches/7.2/0020-cpus-a-trylock-for-the-big-lock.patch
)

# The fork's own files, at their paths in the QEMU tree: the same list as
# overlay_dirs in the fork's buildsys/prepare-tree (checked by check-ebuild).
QVA_OVERLAY_DIRS=( audio hw include tests/qtest tests/unit )

# Prebuilt x86 option ROMs and EDK2 images from upstream's tarball.
QA_PREBUILT="usr/lib*/${PN}/share/qemu/*"

pkg_pretend() {
	if use kernel_linux && linux_config_exists; then
		local CONFIG_CHECK="~KVM ~VFIO_PCI ~TUN ~BRIDGE"
		use vhost-net && CONFIG_CHECK+=" ~VHOST_NET"
		local ERROR_VFIO_PCI="VFIO_PCI is needed to pass a GPU through"
		check_extra_config
	fi
}

# python-any-r1's (linux-info's kernel checks are in pkg_pretend).
pkg_setup() {
	python-any-r1_pkg_setup
}

# Where everything goes: a prefix of its own, beside app-emulation/qemu.
# QEMU finds its data relative to the binary (through /proc/self/exe, so
# the /usr/bin link works too).
qva_prefix() {
	echo "/usr/$(get_libdir)/${PN}"
}

src_prepare() {
	default

	# The fork's files, as buildsys/prepare-tree copies them: its
	# meson.build as qemu-vfio-audio/meson.build (entered by patch 0001),
	# every file of the overlay directories at the same path, and never
	# over an upstream file (changes to those are patches).
	mkdir -p qemu-vfio-audio || die
	cp "${FORK_S}"/meson.build qemu-vfio-audio/meson.build || die
	local d f
	for d in "${QVA_OVERLAY_DIRS[@]}"; do
		[[ -d ${FORK_S}/${d} ]] || continue
		while IFS= read -r -d '' f; do
			f=${f#"${FORK_S}"/}
			[[ -e ${S}/${f} ]] &&
				die "${f} would replace upstream's file; it has to be a patch"
			mkdir -p "${S}/${f%/*}" || die
			cp "${FORK_S}/${f}" "${S}/${f}" || die
		done < <(find "${FORK_S}/${d}" -type f ! -name '*~' -print0)
	done

	# --version: patch 0002 reads this (prepare-tree names the Debian
	# version there; here it is the Gentoo package).
	echo "qemu-vfio-audio ${PV}, Gentoo ${PF}" > .fork-version || die

	# Bundled code Gentoo takes from the system: libfdt (sys-apps/dtc),
	# meson, and the firmware sources (sys-firmware/*).
	rm -r dtc meson roms/*/ || die

	# As app-emulation/qemu: the toolchain already sets _FORTIFY_SOURCE.
	sed -i -e 's/-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2//' configure || die
}

# The configure arguments the USE flags decide, one switch per flag, in
# QVA_USE_SWITCHES order, then the audio driver list.
qva_use_conf() {
	local entry flag switch
	for entry in "${QVA_USE_SWITCHES[@]}"; do
		flag=${entry%%:*}
		switch=${entry#*:}
		if [[ ${flag} == fdt ]]; then
			use_enable fdt fdt system
		else
			use_enable "${flag}" "${switch}"
		fi
	done

	# Audio drivers in the order a device without audiodev= tries them:
	# the fork's pa,alsa (PulseAudio first), then the others built.  Every
	# driver listed must be built (meson stops otherwise), so the list
	# follows the same flags.
	local drivers=(
		$(usev pulseaudio pa)
		$(usev alsa)
		$(usev jack)
		$(usev sdl)
	)
	echo "--audio-drv-list=$(IFS=,; echo "${drivers[*]}")"
}

src_configure() {
	local prefix=$(qva_prefix)
	local targets=() target
	for target in ${IUSE_SOFTMMU_TARGETS}; do
		use "qemu_softmmu_targets_${target}" &&
			targets+=( "${target}-softmmu" )
	done

	local conf_opts=(
		--prefix="${EPREFIX}${prefix}"
		--sysconfdir="${EPREFIX}/etc"
		--localstatedir="${EPREFIX}/var"
		# -netdev bridge finds app-emulation/qemu's qemu-bridge-helper
		--libexecdir="${EPREFIX}/usr/libexec"
		--cc="$(tc-getCC)"
		--cxx="$(tc-getCXX)"
		--host-cc="$(tc-getBUILD_CC)"
		# No --python: QEMU 7.2's configure accepts it only with the bundled
		# meson/, removed above; python-any-r1's pkg_setup puts ${PYTHON}
		# first in PATH, where configure looks.
		--disable-strip
		--disable-werror
		--disable-containers
		--disable-tcg-interpreter
		--with-git-submodules=ignore
		--target-list="$(IFS=,; echo "${targets[*]}")"

		# The fork's defaults (its configure's fork_defaults), where no
		# USE flag decides them: KVM (VFIO comes with it), vhost,
		# slirp, io_uring, NUMA; no docs, tools, guest agent or
		# virtiofsd: qemu-system-x86_64 is the product.
		--enable-kvm
		--enable-vhost-kernel
		--enable-slirp
		--enable-linux-io-uring
		--enable-numa
		--disable-docs
		--disable-tools
		--disable-guest-agent
		--disable-virtiofsd
		# Firmware: SeaBIOS and SeaVGABIOS from sys-firmware/seabios, as
		# the fork points at Debian's seabios; upstream's other x86 ROMs
		# are installed from the tarball (Debian's qemu-system-data
		# supplies those to the fork there), hence install-blobs.
		--firmwarepath="${EPREFIX}/usr/share/seabios:${EPREFIX}/usr/share/seavgabios"
		--enable-install-blobs
		# What the fork's Debian build has without a switch of its own
		# (its configure leaves them to auto-detection, which finds them
		# there): GnuTLS (VNC TLS, TLS migration, LUKS crypto), zstd
		# (qcow2, migration), OSS (-audiodev oss).  Here they are fixed.
		--enable-gnutls
		--enable-zstd
		--enable-oss

		# No automagic: every other external library is off; none of
		# them is in the fork's Debian build either (nettle and gcrypt:
		# crypto is GnuTLS's, as there).  SELinux only matters to
		# qemu-nbd, a tool.
		--disable-auth-pam
		--disable-blkio
		--disable-bpf
		--disable-brlapi
		--disable-canokey
		--disable-capstone
		--disable-dbus-display
		--disable-fuse
		--disable-gcrypt
		--disable-glusterfs
		--disable-libdaxctl
		--disable-libnfs
		--disable-libpmem
		--disable-libssh
		--disable-libudev
		--disable-lzfse
		--disable-lzo
		--disable-mpath
		--disable-nettle
		--disable-pvrdma
		--disable-rbd
		--disable-rdma
		--disable-sdl-image
		--disable-selinux
		--disable-smartcard
		--disable-snappy
		--disable-sndio
		--disable-spice
		--disable-spice-protocol
		--disable-u2f
		--disable-usb-redir
		--disable-vde
		--disable-virglrenderer
		--disable-vnc-sasl
		--disable-vte
		--disable-xen
		--disable-xen-pci-passthrough
		# prebuilt keymaps, as app-emulation/qemu (bug #759604)
		--disable-xkbcommon

		$(qva_use_conf)
	)
	# Experiments, as app-emulation/qemu's EXTRA_CONF_QEMU.
	conf_opts+=( ${EXTRA_CONF_QEMU} )

	BUILD_DIR="${WORKDIR}/${P}-build"
	mkdir -p "${BUILD_DIR}" || die
	cd "${BUILD_DIR}" || die
	einfo "${S}/configure ${conf_opts[*]}"
	"${S}"/configure "${conf_opts[@]}" || die "configure failed"
}

src_compile() {
	emake -C "${WORKDIR}/${P}-build"
}

src_test() {
	# The fork's tests, as its `make check` builds and runs them through
	# meson: its unit tests (suite fork-unit) and the x86_64 qtests, which
	# hold the fork's own (ac97-dma-test, ac97-pacing-test, hda-pacing-test,
	# kvm-irqchip-vfio-test: skips without a usable /dev/kvm) beside
	# upstream's.  Upstream's make wrapper builds what they need.  The
	# fork's tests/integration (real sound servers, throwaway users, root)
	# do not fit a sandboxed build and are left out.
	emake -C "${WORKDIR}/${P}-build" check-fork-unit check-qtest-x86_64
}

src_install() {
	local prefix=$(qva_prefix)
	local data=${prefix}/share/qemu

	emake -C "${WORKDIR}/${P}-build" DESTDIR="${D}" install

	# install-blobs installs every target's firmware: keep x86's.
	pushd "${ED}${data}" >/dev/null || die
	rm -f openbios-* QEMU,*.bin s390-*.img slof.bin skiboot.lid \
		palcode-clipper u-boot* qemu_vga.ndrv hppa-firmware.img \
		opensbi-* npcm7xx_bootrom.bin vof*.bin *.dtb qemu-nsis.bmp \
		edk2-a* firmware/*-edk2-a*.json || die
	# SeaBIOS and SeaVGABIOS come through --firmwarepath; vgabios.bin
	# has another name there.  iPXE names its ROMs by PCI id.
	rm -f bios-256k.bin vgabios.bin vgabios-{cirrus,qxl,stdvga,virtio,vmware}.bin \
		pxe-*.rom || die
	popd >/dev/null || die
	dosym -r /usr/share/seavgabios/vgabios-isavga.bin "${data}"/vgabios.bin
	local rom
	for rom in e1000:8086100e eepro100:80861209 ne2k_pci:10500940 \
		pcnet:10222000 rtl8139:10ec8139 virtio:1af41000; do
		dosym -r "/usr/share/ipxe/${rom#*:}.rom" "${data}/pxe-${rom%:*}.rom"
	done
	dostrip -x "${data}"

	dosym -r "${prefix}"/bin/qemu-system-x86_64 \
		/usr/bin/qemu-system-x86_64-vfio-audio

	dodoc "${FORK_S}"/README.md "${FORK_S}"/README-fork.md
}

pkg_postinst() {
	elog "qemu-vfio-audio is installed beside app-emulation/qemu as"
	elog "  ${EROOT}/usr/bin/qemu-system-x86_64-vfio-audio"
	elog "For libvirt, point the domain's <emulator> at that path."
	elog "Audio: -audiodev pa,id=snd0 -device AC97,audiodev=snd0 (see"
	elog "README-fork.md in /usr/share/doc/${PF})."
}
