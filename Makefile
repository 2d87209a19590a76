# parkpage Makefile. `make run` and `make test` install what a fresh Debian
# machine lacks (apt packages, only when missing), then build and run or test.

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
VERSION  := $(VERSION)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/parkpage
CONFIG   ?=
ifeq ($(shell id -u),0)
STATE_DIR ?= /var/lib/parkpage
else
STATE_DIR ?= $(HOME)/.local/state/parkpage
endif

# C libraries for cgo (Opus, flite text-to-speech) and the tools the tests
# use as real peers (sipp from sip-tester, baresip, ffmpeg for G.722).
APT_BUILD := pkg-config gcc libopus-dev libopusfile-dev flite1-dev
APT_TEST  := $(APT_BUILD) sip-tester baresip ffmpeg sox iproute2 chromium libspandsp-dev
# The intelligibility bench (scripts/speechbench): Debian's recogniser, and
# Allison's Asterisk prompts at 8 and 16 kHz to check it on human speech.
APT_BENCH := pocketsphinx pocketsphinx-en-us asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722

# The appliance images (image/, gokrazy) and their QEMU test: mkfs/mtools
# for the partitions, QEMU with UEFI firmware to boot them, sipp as the
# SIP peer.
APT_IMAGE := e2fsprogs mtools dosfstools fdisk qemu-system-x86 qemu-system-arm qemu-efi-aarch64 ovmf sip-tester

# The Debian package: dpkg-deb, lintian, and mmdebstrap for the clean
# chroot it is installed into.
APT_DEB := dpkg-dev lintian mmdebstrap
DEB_VERSION ?= 0.1.0~git$(shell date -u +%Y%m%d).$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)-1
# Expanded once: a commit or midnight during `make deb-test` must not
# change the name of the package built a moment before.
DEB_VERSION := $(DEB_VERSION)

.PHONY: image-test-amd64 image image-test image-test-arm image-test-update kernel deps-image deb deb-test
.PHONY: all build static build-arm64 arm64-smoke run demo test test-unit test-integration bench bench-speech bench-rhvoice rhvoice vet fmt-check deps-build deps-test clean fuzz soak

all: build

deps-build:
	@scripts/apt-ensure $(APT_BUILD)
	@scripts/go-ensure

deps-test:
	@scripts/apt-ensure $(APT_TEST)
	@scripts/go-ensure

build: deps-build
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/parkpage

# The appliance target: one static arm64 binary (gokrazy has no shared
# libraries). scripts/arm64-ensure adds the arm64 dpkg architecture and
# installs the cross gcc and libopus-dev:arm64, flite1-dev:arm64. Tags:
# nolibopusfile (no libopusfile/libogg: parkpage never reads Ogg files),
# static_flite (stubs for the ALSA symbols libflite.a references: Debian
# ships no libasound.a, and parkpage only synthesises into memory); -lm
# after the static libopus.
build-arm64:
	@scripts/arm64-ensure
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
	PKG_CONFIG_PATH=/usr/lib/aarch64-linux-gnu/pkgconfig CGO_LDFLAGS=-lm \
	$(GO) build -tags netgo,osusergo,nolibopusfile,static_flite -ldflags '$(LDFLAGS) -extldflags -static' -o bin/parkpage-arm64 ./cmd/parkpage

# Runs the static arm64 binary under qemu-user: it starts, checks the
# default config and speaks an announcement (flite and G.722 linked in).
arm64-smoke: build-arm64
	@scripts/apt-ensure qemu-user
	qemu-aarch64 bin/parkpage-arm64 version
	qemu-aarch64 bin/parkpage-arm64 print-default-config > bin/default.yaml
	qemu-aarch64 bin/parkpage-arm64 check-config bin/default.yaml
	qemu-aarch64 bin/parkpage-arm64 render -text "Sales call on 704" -codec g722 -o bin/arm64-render.wav

run: build
	$(BIN) run -state-dir $(STATE_DIR) $(if $(CONFIG),-config $(CONFIG))

# The whole workflow with simulated phones, on loopback only: a caller is
# parked, the park is announced (sound card if usable, WAVs always), the
# slot board shows it, a second phone picks it up. DEMO_DIR keeps the files.
demo: build
	$(BIN) demo $(if $(DEMO_DIR),-dir $(DEMO_DIR))

vet: deps-build
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Unit and integration tests: everything runs on loopback with real peers.
# The browser test is a module of its own (BROWSER_TEST), so that chromedp
# stays out of the main module's requirements.
BROWSER_TEST := cmd/parkpage/browsertest
test: deps-test fmt-check vet
	$(GO) test -race -count=1 -timeout 8m ./...
	cd $(BROWSER_TEST) && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

# The churn soak (internal/soak): 10,000 randomized park/pickup/hang-up/
# timeout cycles against the real binary with sipp peers, invariants
# checked after each of 20 phases. Not part of `make test`, which runs its
# 500-cycle version. SOAK_FLAGS adds flags (-soak.restarts, -soak.seed N,
# -soak.race).
SOAK_CYCLES ?= 10000
SOAK_FLAGS  ?=
soak: deps-test
	$(GO) test -count=1 -v -run '^TestSoak$$' -timeout 4h ./internal/soak -soak.cycles=$(SOAK_CYCLES) $(SOAK_FLAGS)

# Benchmarks one package at a time (-p 1), so one load test never skews
# another's figures. Each reports medians/p99s with b.ReportMetric, and
# ratios to a baseline measured in the same run. BenchmarkIdle measures
# the static appliance build (`make static`).
bench: deps-test static
	@scripts/apt-ensure $(APT_BENCH)
	PARKPAGE_IDLE_BIN=$(CURDIR)/bin/parkpage-static \
		$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./...
	$(MAKE) bench-speech

# How well announcements are understood (README, "How announcements
# sound"): renders x pocketsphinx, cached in SPEECHBENCH_CACHE (a rerun
# recognises only what changed). First the recogniser itself on human
# speech at 16 and 8 kHz (Allison's Asterisk prompts), then the full matrix
# (slots 701-710 x 20 labels x G.722, PCMU, PCMA, Opus) for every voice
# with the default speech, every speech setting with the default voice, and
# the old defaults (voices, settings, the old phrase "{label} call on
# {slot}"). About 26,000 recognitions: hours on a busy 2-core box;
# SPEECHBENCH_FLAGS=-pairs (each label once) is a quick look.
# pico (SVOX Pico, Debian non-free) is a bench-only comparison voice: its
# rows are skipped, with a note, where pico2wave is missing (README).
SPEECHBENCH_CACHE ?= bin/speechbench-cache
SPEECHBENCH_FLAGS ?=
SPEECHBENCH = nice -n 10 $(GO) run ./scripts/speechbench -cache $(SPEECHBENCH_CACHE) $(SPEECHBENCH_FLAGS)
bench-speech:
	@scripts/apt-ensure $(APT_BENCH)
	$(SPEECHBENCH) -validate -nb up,fold:6,8k:3500 -o bin/speechbench-human.md
	$(SPEECHBENCH) -voices rms,awb,kal16,slt,prompts+rms,pico -paging 'default' -o bin/speechbench-voices.md
	$(SPEECHBENCH) -voices rms -paging 'plain;default,zero=0;default,gap=100ms;default,rate=1;default,rate=1.2;default,presence=7' -o bin/speechbench-settings.md
	$(SPEECHBENCH) -voices kal16,slt -paging 'default,zero=0;plain' -o bin/speechbench-old.md
	$(SPEECHBENCH) -voices rms -paging default -template '{label} call on {slot}' -o bin/speechbench-phrase.md

# RHVoice (README, "How announcements sound") is a bench-only comparison
# engine in no package registry: `make rhvoice` builds it into bin/rhvoice
# from local snapshots of its git repositories (scripts/rhvoice-build says
# which; RHVOICE_MIRRORS points at them). bench-rhvoice measures its
# English voices against the default: each label once (-pairs) for all
# five (G.722 and PCMU), then the full matrix for the two best (bdl, alan).
RHVOICE_TEST ?= $(CURDIR)/bin/rhvoice/bin/RHVoice-test
rhvoice: $(RHVOICE_TEST)
$(RHVOICE_TEST):
	scripts/rhvoice-build bin/rhvoice
bench-rhvoice: rhvoice
	@scripts/apt-ensure $(APT_BENCH)
	RHVOICE_TEST=$(RHVOICE_TEST) $(SPEECHBENCH) -voices rms,rhvoice-slt,rhvoice-bdl,rhvoice-clb,rhvoice-alan,rhvoice-evgeniy -paging 'default' -codecs g722,pcmu -pairs -o bin/speechbench-rhvoice-pairs.md
	RHVOICE_TEST=$(RHVOICE_TEST) $(SPEECHBENCH) -voices rhvoice-bdl,rhvoice-alan -paging 'default' -o bin/speechbench-rhvoice.md

fuzz: deps-build
	scripts/fuzz-all 20s

deps-image:
	@scripts/apt-ensure $(APT_BUILD) $(APT_IMAGE)
	@scripts/arm64-ensure
	@scripts/go-ensure

# gok (gokrazy's packer) and mkimage come from image/, a module of their
# own (pinned in image/go.mod), so the main go.mod stays free of them.
bin/gok: image/go.mod image/go.sum
	cd image && $(GO) build -o ../bin/gok github.com/gokrazy/tools/cmd/gok

bin/mkimage: image/go.mod $(wildcard image/mkimage/*.go) $(wildcard internal/diskimage/*.go)
	cd image && $(GO) build -o ../bin/mkimage ./mkimage

MKIMAGE = bin/mkimage -repo . -gok bin/gok -version $(VERSION)

# The amd64 image boots parkpage's own kernel (image/kernel/amd64: line
# out and gpio-sim, which gokrazy's kernel.amd64 lacks), committed as a
# prebuilt vmlinuz; `make kernel` rebuilds it from Debian's linux-source.
KERNEL_AMD64 ?= image/kernel/amd64
MKIMAGE_AMD64 = $(MKIMAGE) -target amd64 $(if $(wildcard $(KERNEL_AMD64)/vmlinuz),-kernel-dir $(KERNEL_AMD64))
APT_KERNEL := linux-source-6.1 bc bison flex libelf-dev libssl-dev
kernel:
	@scripts/apt-ensure $(APT_KERNEL)
	image/kernel/amd64/build-kernel

# `make image [CONFIG=site.yaml]`: the Raspberry Pi 4/5 image and the
# generic amd64 (UEFI PC or VM) image, each a .img to write with Raspberry
# Pi Imager, balenaEtcher or dd. CONFIG bakes a site config in.
image: deps-image bin/gok bin/mkimage
	$(MKIMAGE) -target pi -o bin/parkpage-pi.img $(if $(CONFIG),-config $(CONFIG))
	$(MKIMAGE_AMD64) -o bin/parkpage-amd64.img $(if $(CONFIG),-config $(CONFIG))
	@ls -l bin/parkpage-pi.img bin/parkpage-amd64.img
	@du -h --apparent-size bin/parkpage-pi.img bin/parkpage-amd64.img | sed 's/^/apparent size: /'
	@du -h bin/parkpage-pi.img bin/parkpage-amd64.img | sed 's/^/written blocks: /'

# Boots the images in QEMU (TCG) and proves them with real peers: see
# image/imagetest. The tests copy the images and drop their files
# (image/testdata/qemu-site.yaml...) on the FAT boot partition, as an
# installer would. The amd64 test image is `make image`'s plus the
# test-only gpiosim service (a simulated GPIO chip for the relay, a kill -9
# endpoint); it is never the image installers flash.
image-test: image-test-amd64 image-test-arm image-test-update

# The amd64 image's first boot, park and pickup, line out, gpio-sim
# relays, BIOS boot (image/imagetest).
image-test-amd64: deps-image bin/gok bin/mkimage
	cd image && $(GO) test -count=1 ./mkimage
	$(GO) test -count=1 ./internal/diskimage
	$(MKIMAGE_AMD64) -test-gpiosim -o bin/parkpage-amd64-test.img
	cd image && $(GO) test -count=1 -v -timeout 40m -run 'AMD64|WAV' -skip 'AMD64Update' ./imagetest

# A/B updates in QEMU: the amd64 image updated over HTTP with the admin
# credential (`parkpage update`) to a rebuilt image, kept once healthy;
# then a deliberately broken one (parkpage exits with a usage error)
# that the box rolls back. The trial boot's deadline is 2 min here. The
# base image is `make image`'s bin/parkpage-amd64.img (built if missing).
UPDATE_DEADLINE ?= 2m
image-test-update: deps-image build bin/gok bin/mkimage
	$(if $(wildcard bin/parkpage-amd64.img),,$(MKIMAGE_AMD64) -o bin/parkpage-amd64.img)
	$(MKIMAGE_AMD64) -update-deadline $(UPDATE_DEADLINE) -version $(VERSION)-update -o bin/parkpage-amd64-update.img
	$(MKIMAGE_AMD64) -update-deadline $(UPDATE_DEADLINE) -version $(VERSION)-broken -parkpage-flag=-no-such-flag -o bin/parkpage-amd64-broken.img
	cd image && PARKPAGE_UPDATE_VERSION=$(VERSION)-update $(GO) test -count=1 -v -timeout 60m -run 'AMD64Update' ./imagetest

# The arm64 image in qemu-system-aarch64 and the Pi image's structure.
image-test-arm: deps-image bin/gok bin/mkimage
	$(MKIMAGE) -target arm64 -o bin/parkpage-arm64.img
	$(MKIMAGE) -target pi -o bin/parkpage-pi.img
	cd image && $(GO) test -count=1 -v -timeout 30m -run '^(TestARM64Boot|TestPiImageStructure)$$' ./imagetest

# The static amd64 binary the Debian package ships (and `make bench`
# measures idle).
static: deps-build
	CGO_ENABLED=1 CGO_LDFLAGS=-lm $(GO) build -tags netgo,osusergo,nolibopusfile,static_flite \
		-ldflags '$(LDFLAGS) -s -w -extldflags -static' -o bin/parkpage-static ./cmd/parkpage

# `make deb`: bin/parkpage_VERSION_amd64.deb (the static binary, a systemd
# unit, /etc/parkpage/parkpage.yaml as a conffile), checked with lintian.
# `make deb-test` installs it into a clean Debian chroot (mmdebstrap).
deb: static
	@scripts/apt-ensure $(APT_DEB)
	image/deb/build-deb bin/parkpage-static '$(DEB_VERSION)' bin
	lintian --fail-on error,warning bin/parkpage_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb

# Then it upgrades the package under three parked calls (image/imagetest
# TestDebUpgrade: dpkg -i of the same package rebuilt with a bumped
# version, in a clean chroot, sipp callers on loopback) and prints the
# longest gap they heard.
DEB_NEXT_VERSION = $(DEB_VERSION)+upgrade1
deb-test: deb
	image/deb/test-deb bin/parkpage_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb
	@scripts/apt-ensure sip-tester
	CGO_ENABLED=1 CGO_LDFLAGS=-lm $(GO) build -tags netgo,osusergo,nolibopusfile,static_flite \
		-ldflags '-X main.version=$(VERSION)+upgrade1 -s -w -extldflags -static' -o bin/parkpage-static-next ./cmd/parkpage
	image/deb/build-deb bin/parkpage-static-next '$(DEB_NEXT_VERSION)' bin
	cd image && PARKPAGE_DEB=$(CURDIR)/bin/parkpage_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb \
		PARKPAGE_DEB_NEW=$(CURDIR)/bin/parkpage_$(DEB_NEXT_VERSION)_$(shell dpkg --print-architecture).deb \
		$(GO) test -count=1 -v -timeout 20m -run '^TestDebUpgrade$$' ./imagetest

clean:
	rm -rf bin
