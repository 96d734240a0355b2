#!/bin/bash
# pull against the reference registry (distribution, Debian's package
# docker-registry) and skopeo, the tools a learner would check it with:
# skopeo pushes the course's demo image to the registry, once as an OCI
# manifest and once as a Docker v2 one; pull fetches both; skopeo reads what
# pull wrote, and must find the registry's image. Everything happens in a
# network namespace of its own, on its loopback. Run it as root from the
# repository root; CI does.
set -euo pipefail
fail() { echo "pull/interop-test.sh: $*" >&2; exit 1; }
for tool in docker-registry skopeo unshare ip; do
	command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install docker-registry skopeo util-linux iproute2)"
done
[ "$(id -u)" = 0 ] || fail "run it as root: it makes a network namespace"

if [ "${1:-}" != --inside ]; then
	exec unshare --net --mount "$0" --inside
fi
ip link set lo up
work=$(mktemp -d)
registry=
trap '[ -z "$registry" ] || kill "$registry" 2>/dev/null; wait; rm -rf "$work"' EXIT
go build -o "$work/bin/" ./mkrootfs ./pull

cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:5000
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry=$!
for try in $(seq 100); do
	[ -n "$(ss -Hltn 'sport = :5000' 2>/dev/null)" ] && break
	[ "$try" -lt 100 ] || { cat "$work/registry.log" >&2; fail "the registry did not listen on 127.0.0.1:5000 in 10 s"; }
	sleep 0.1
done

"$work/bin/mkrootfs" -image "$work/demo:1" "$work/rootfs" >/dev/null
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/demo:1" docker://127.0.0.1:5000/demo:oci
skopeo --insecure-policy copy -q --dest-tls-verify=false --format v2s2 "oci:$work/demo:1" docker://127.0.0.1:5000/demo:docker

for tag in oci docker; do
	"$work/bin/pull" -o "$work/pulled" "127.0.0.1:5000/demo:$tag"
	pushed=$(skopeo inspect --tls-verify=false --raw "docker://127.0.0.1:5000/demo:$tag" | sha256sum | cut -d' ' -f1)
	pulled=$(skopeo inspect --raw "oci:$work/pulled:$tag" | sha256sum | cut -d' ' -f1)
	layers=$(skopeo inspect --format '{{.Layers}}' "oci:$work/pulled:$tag")
	want=$(skopeo inspect --format '{{.Layers}}' "oci:$work/demo:1")
	[ "$layers" = "$want" ] || fail "demo:$tag: skopeo reads layers $layers in what pull wrote, not $want"
	if [ "$tag" = oci ]; then
		[ "$pushed" = "$pulled" ] || fail "demo:oci: pull wrote manifest sha256:$pulled, the registry has sha256:$pushed"
	else
		# A Docker manifest is written as its OCI twin: the same blobs.
		skopeo inspect --raw "oci:$work/pulled:$tag" | grep -q '"application/vnd.oci.image.manifest.v1+json"' ||
			fail "demo:docker: pull did not write an OCI manifest"
	fi
	echo "ok: the registry's demo:$tag, pulled, reads in skopeo"
done
# A second pull fetches no blob.
"$work/bin/pull" -o "$work/pulled" 127.0.0.1:5000/demo:oci | grep -q 'fetched 0 blobs' || fail "the second pull fetched blobs"
echo "ok: a second pull fetches nothing"
