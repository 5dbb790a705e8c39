/*
 * e2e-pci: the e2e guest's independent witness of what virt-pci did to a device.
 * Test-only; runs only inside the e2e VM. Built static so it runs in the busybox
 * initramfs and in the debootstrapped guest alike.
 *
 *   e2e-pci bar-read  BDF BAR OFFSET        print the 32-bit register (0x%08x)
 *   e2e-pci bar-write BDF BAR OFFSET VALUE  write it, read it back
 *   e2e-pci viable    BDF                   VFIO_GROUP_GET_STATUS of BDF's group:
 *                                           prints viable=1|0, exit 0 if viable, 1 if not
 *   e2e-pci pm        BDF                   the power state from the PM capability
 *                                           (D0..D3hot): a device in D3hot ignores BAR
 *                                           accesses, and vfio-pci idles unused devices there
 *
 * Why a register in BAR 0: the kernel saves and restores config space around every
 * reset, so config space cannot show that a reset happened. A device register that
 * the reset returns to its default value can (gotcha 2 of the research notes:
 * libvirt silently skips resetting a device bound to vfio-pci).
 * The guest boots with iomem=relaxed so that a BAR claimed by a driver can still be
 * mapped through sysfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int fail(const char *what, const char *path) {
  fprintf(stderr, "e2e-pci: %s %s: %s\n", what, path, strerror(errno));
  return 2;
}

/* Memory decoding must be on for BAR accesses to reach the device (a device no
 * driver ever enabled has it off). */
static int enable_memory(const char *bdf) {
  char path[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", bdf);
  int fd = open(path, O_RDWR);
  if (fd < 0) return fail("open", path);
  uint16_t cmd;
  if (pread(fd, &cmd, 2, 4) != 2) return fail("read command register of", path);
  if (!(cmd & 2)) {
    cmd |= 2;
    if (pwrite(fd, &cmd, 2, 4) != 2) return fail("write command register of", path);
  }
  close(fd);
  return 0;
}

static int bar(const char *bdf, int barno, unsigned long off, int write, uint32_t val) {
  if (enable_memory(bdf)) return 2;
  char path[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource%d", bdf, barno);
  int fd = open(path, O_RDWR | O_SYNC);
  if (fd < 0) return fail("open", path);
  unsigned long page = off & ~4095UL;
  volatile uint32_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, page);
  if (p == MAP_FAILED) return fail("mmap", path);
  volatile uint32_t *reg = p + (off - page) / 4;
  if (write) *reg = val;
  printf("0x%08x\n", *reg);
  munmap((void *)p, 4096);
  close(fd);
  return 0;
}

static int viable(const char *bdf) {
  char link[256], target[256];
  snprintf(link, sizeof link, "/sys/bus/pci/devices/%s/iommu_group", bdf);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return fail("readlink", link);
  target[n] = 0;
  char dev[300];
  snprintf(dev, sizeof dev, "/dev/vfio/%s", basename(target));
  int fd = open(dev, O_RDWR);
  if (fd < 0) return fail("open", dev);
  struct vfio_group_status st = {.argsz = sizeof st};
  if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st)) return fail("VFIO_GROUP_GET_STATUS", dev);
  int ok = (st.flags & VFIO_GROUP_FLAGS_VIABLE) != 0;
  printf("viable=%d\n", ok);
  close(fd);
  return ok ? 0 : 1;
}

static int pm(const char *bdf) {
  char path[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", bdf);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return fail("open", path);
  uint8_t cfg[256];
  if (pread(fd, cfg, sizeof cfg, 0) != (ssize_t)sizeof cfg) return fail("read", path);
  close(fd);
  if (!(cfg[6] & 0x10)) { fprintf(stderr, "e2e-pci: %s has no capability list\n", bdf); return 2; }
  for (int p = cfg[0x34] & 0xfc, n = 0; p && n < 48; p = cfg[p + 1] & 0xfc, n++) {
    if (cfg[p] == 0x01) {
      static const char *names[] = {"D0", "D1", "D2", "D3hot"};
      printf("%s\n", names[cfg[p + 4] & 3]);
      return 0;
    }
  }
  fprintf(stderr, "e2e-pci: %s has no PM capability\n", bdf);
  return 2;
}

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "bar-read"))
    return bar(argv[2], atoi(argv[3]), strtoul(argv[4], NULL, 0), 0, 0);
  if (argc == 6 && !strcmp(argv[1], "bar-write"))
    return bar(argv[2], atoi(argv[3]), strtoul(argv[4], NULL, 0), 1,
               (uint32_t)strtoul(argv[5], NULL, 0));
  if (argc == 3 && !strcmp(argv[1], "viable")) return viable(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "pm")) return pm(argv[2]);
  fprintf(stderr,
          "usage: e2e-pci bar-read BDF BAR OFF | bar-write BDF BAR OFF VAL | viable BDF | pm BDF\n");
  return 2;
}
