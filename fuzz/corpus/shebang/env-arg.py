#!/usr/bin/env python3 -u
