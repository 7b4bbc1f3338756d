/* Compiled into a module library that has no sources yet, so every target links. */
typedef int ag_empty_translation_unit;
