
1type.googleapis.com/io.containerd.runc.v1.Options2runc