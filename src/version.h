/* version.h - the version string every program prints for -V. */
#ifndef MSAGATE_VERSION_H
#define MSAGATE_VERSION_H
#define MSAGATE_VERSION PACKAGE_VERSION   /* from build-config.h */
#endif
