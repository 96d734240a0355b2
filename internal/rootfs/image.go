package rootfs

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"time"

	"containers-from-scratch/internal/oci"
)

// DemoImage is the course's demo image, in three layers, as step13's page
// shows it:
//
//  1. the root filesystem at dir, its files owned by root, as an image's
//     are (not its marker, nor what is in /dev);
//  2. a user, app (1000, in group staff too), with a home, two files in it,
//     and a cache in /var/cache/app that belongs to uid 42, as Debian's
//     apt cache belongs to _apt;
//  3. an update: hello.txt changed, draft.txt deleted (a whiteout), and
//     the cache made anew (an opaque directory).
//
// Its config runs sh as app, in /home/app, with an environment of its own.
// Every file has the same time: the same root filesystem gives the same
// image, digests and all.
func DemoImage(dir string) (oci.Image, error) {
	base, err := oci.LayerOf(dir, func(name string) bool {
		return name == Marker || strings.HasPrefix(name, "dev/")
	})
	if err != nil {
		return oci.Image{}, err
	}
	for i := range base {
		base[i].Uid, base[i].Gid = 0, 0
		base[i].ModTime, base[i].AccessTime, base[i].ChangeTime = demoTime, time.Time{}, time.Time{}
	}
	passwd, err := os.ReadFile(filepath.Join(dir, "etc/passwd"))
	if err != nil {
		return oci.Image{}, err
	}
	group, err := os.ReadFile(filepath.Join(dir, "etc/group"))
	if err != nil {
		return oci.Image{}, err
	}
	user := oci.Layer{
		file("etc/passwd", string(passwd)+"app:x:1000:1000::/home/app:/bin/sh\n", 0o644, 0),
		file("etc/group", string(group)+"app:x:1000:\nstaff:x:50:app\n", 0o644, 0),
		directory("home/app", 0o755, 1000),
		file("home/app/hello.txt", "hello from layer 2\n", 0o644, 1000),
		file("home/app/draft.txt", "deleted by layer 3\n", 0o644, 1000),
		directory("var/cache/app", 0o755, 42),
		file("var/cache/app/old", "cached in layer 2\n", 0o644, 42),
	}
	// A layer names the directories of what it changes, as docker build
	// writes them: one it does not name, overlayfs shows as this layer
	// makes it, root's.
	update := oci.Layer{
		directory("home/app", 0o755, 1000),
		file("home/app/hello.txt", "hello from layer 3\n", 0o644, 1000),
		file("home/app/.wh.draft.txt", "", 0o644, 0),
		directory("var/cache/app", 0o755, 42),
		file("var/cache/app/.wh..wh..opq", "", 0o644, 0),
		file("var/cache/app/new", "cached in layer 3\n", 0o644, 42),
	}
	return oci.Image{Layers: []oci.Layer{base, user, update}, Config: map[string]any{
		"User": "app", "WorkingDir": "/home/app", "Cmd": []string{"sh"},
		"Env": []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello from the image's config"},
	}}, nil
}

// demoTime is when the demo image's own files were made: a fixed time, so
// that the image is the same, digests and all, every time it is written.
var demoTime = time.Date(2018, 11, 7, 0, 0, 0, 0, time.UTC) // the GOTO talk's year

func file(name, body string, mode int64, owner int) oci.Entry {
	return oci.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: owner, Gid: owner, ModTime: demoTime}, Body: body}
}

func directory(name string, mode int64, owner int) oci.Entry {
	return oci.Entry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: demoTime}}
}
