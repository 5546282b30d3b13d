//! PVH entry: QEMU (like Xen and Firecracker) finds `pvh_start32` through the XEN_ELFNOTE_PHYS32_ENTRY note and
//! jumps there in 32-bit protected mode with paging off, `%ebx` pointing at the `hvm_start_info` block.
//! The code below identity-maps the first 4 GiB with 2 MiB pages (RAM, the PCI hole and the virtio BARs that
//! SeaBIOS placed below 4 GiB), switches to long mode and calls `kernel_main(start_info)`.

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 4                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start32

    .section .text.boot, "ax", @progbits
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi                         /* keep hvm_start_info */

    /* Zero PML4 and PDPT (the loader zeroes .bss, but be independent of that). */
    movl $boot_pml4, %edi
    xorl %eax, %eax
    movl $(2 * 4096 / 4), %ecx
    rep stosl

    /* PML4[0] -> PDPT, PDPT[0..4] -> PD0..PD3 (present | writable). */
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $0x3, %eax
    movl $boot_pdpt, %edi
    movl $4, %ecx
1:
    movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $4096, %eax
    addl $8, %edi
    loop 1b

    /* 2048 PD entries: 2 MiB pages covering 0..4 GiB (present | writable | page size). */
    movl $boot_pd, %edi
    xorl %ebx, %ebx                         /* physical address bits 21..31 */
    xorl %edx, %edx                         /* physical address bits 32..  */
    movl $2048, %ecx
2:
    movl %ebx, %eax
    orl $0x83, %eax
    movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $0x200000, %ebx
    adcl $0, %edx
    addl $8, %edi
    loop 2b

    /* CR4: PAE, OSFXSR, OSXMMEXCPT. CR0: MP, not EM. */
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    /* EFER.LME */
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    /* Paging + protection on: long mode active. */
    movl %cr0, %eax
    andl $~(1 << 2), %eax
    orl $((1 << 31) | (1 << 1) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_entry

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp
    xorq %rbp, %rbp
    movl %esi, %edi                         /* kernel_main(start_info as u64) */
    call kernel_main
3:
    cli
    hlt
    jmp 3b

    .section .rodata.boot, "a", @progbits
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff                /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff                /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
boot_stack:
    .skip 1024 * 1024
boot_stack_top:
    .code64
    .text
"#,
    options(att_syntax)
);
