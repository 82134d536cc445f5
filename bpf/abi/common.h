/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared between the BPF programs (C, after vmlinux.h) and the agent (C++). Every struct
 * in bpf/abi/ is checked for size and field offsets in agent/bpf/abi.h; change both together.
 */
#pragma once

#ifndef __bpf__
#include <linux/types.h>
#endif
